"""Static checks of the architecture (docs/architecture.md): import direction, module size, single owners.

Read from the source with :mod:`ast`, never by importing it, so a check also sees function-level imports:
an import inside a function still ties the two modules together (it only fails later, at call time). Only
imports under ``if TYPE_CHECKING:`` are exempt, as they never run.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard.testing import FRAMEWORK_MODULES, frameworks_imported_by

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "core" / "src"
PACKAGE = "modelyard"
INTEGRATIONS = sorted(p for p in (REPO / "integrations").glob("*/src") if p.is_dir())
#: STYLE.md rule 10: past this, a module holds several concepts.
MAX_LINES = 600


# -- the import graph ---------------------------------------------------------------------------------


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _core_modules() -> dict[str, Path]:
    return {_module_name(p, CORE): p for p in sorted((CORE / PACKAGE).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Yield every import that can run: module level, in functions and classes, not under TYPE_CHECKING."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)  # the `else:` of `if TYPE_CHECKING:` does run
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _targets(importer: str, is_package: bool, node: ast.Import | ast.ImportFrom,
             modules: dict[str, Path]) -> set[str]:
    """Return the core modules an import statement makes Python execute (beyond the importer's ancestors).

    Importing ``a.b.c`` runs ``a``, ``a.b`` and ``a.b.c``; the importer's own ancestors are already running
    when it runs, so they add no edge, unless the statement names the ancestor itself for one of its
    attributes (``from modelyard import __version__`` depends on the facade).
    """
    own = set(_ancestors(importer))
    found: set[str] = set()

    def add(name: str, *, explicit: bool) -> None:
        for candidate in (*_ancestors(name), name):
            if candidate in modules and candidate != importer and (candidate not in own or
                                                                    (explicit and candidate == name)):
                found.add(candidate)

    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                add(alias.name, explicit=False)
        return found
    if node.level:
        base = importer.split(".") if is_package else importer.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        origin = ".".join([*base, *([node.module] if node.module else [])])
    else:
        origin = node.module or ""
    if origin != PACKAGE and not origin.startswith(PACKAGE + "."):
        return found
    submodules = [f"{origin}.{alias.name}" for alias in node.names if f"{origin}.{alias.name}" in modules]
    attributes = len(submodules) < len(node.names)
    add(origin, explicit=attributes)
    for sub in submodules:
        add(sub, explicit=False)
    return found


def import_graph() -> dict[str, set[str]]:
    """Return core module -> the core modules its runtime imports execute."""
    modules = _core_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: set[str] = set()
        for node in _runtime_imports(tree):
            edges |= _targets(name, path.name == "__init__.py", node, modules)
        graph[name] = edges
    return graph


def import_groups(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected groups of modules: each is a set of modules that import one another."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's algorithm; the graph is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph[v]:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return groups


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return one concrete cycle (``a -> b -> ... -> a``) for each strongly connected group of modules."""
    return [_a_cycle(graph, set(group)) for group in import_groups(graph)]


def _a_cycle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:  # breadth first within the group: the shortest way back to the start
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & group):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start} in {sorted(group)}")  # pragma: no cover


def _explain(graph: dict[str, set[str]], group: list[str], sources: dict[str, Path]) -> str:
    cycle = _a_cycle(graph, set(group))
    lines = [" -> ".join(cycle)]
    for a, b in zip(cycle, cycle[1:], strict=False):
        lines.append(f"    {a} imports {b} ({sources[a].relative_to(REPO)})")
    if len(group) > len(cycle) - 1:
        lines.append(f"    (one of the cycles among {', '.join(group)})")
    return "\n".join(lines)


def test_core_has_no_import_cycle() -> None:
    graph = import_graph()
    groups = import_groups(graph)
    sources = _core_modules()
    assert not groups, "import cycles in core (function-level imports count):\n" + "\n".join(
        _explain(graph, g, sources) for g in groups)


def _graph_of(sources: dict[str, str]) -> dict[str, set[str]]:
    modules = {name: Path(f"{name}.py") for name in sources}
    def is_package(name: str) -> bool:
        return any(other.startswith(name + ".") for other in sources)

    return {name: set().union(*(_targets(name, is_package(name), node, modules) for node in
                                _runtime_imports(ast.parse(text)))) for name, text in sources.items()}


def test_the_cycle_check_sees_function_level_imports_and_exempts_type_checking() -> None:
    sources = {
        "modelyard": "",
        "modelyard._a": "from ._b import x\n",
        "modelyard._b": "def f():\n    from modelyard import _a\n",
        "modelyard._c": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ._a import y\n",
        "modelyard._d": "from modelyard._c import z\n",
    }
    graph = _graph_of(sources)
    assert graph["modelyard._b"] == {"modelyard._a"}
    assert graph["modelyard._c"] == set()
    assert import_cycles(graph) == [["modelyard._a", "modelyard._b", "modelyard._a"]]


def test_the_cycle_check_counts_the_facade_and_packages() -> None:
    sources = {
        "modelyard": "from ._m import M\n",
        "modelyard._m": "def f():\n    from modelyard import __version__\n",
        "modelyard._p": "from . import _m\n",
    }
    graph = _graph_of(sources)
    assert graph["modelyard._p"] == {"modelyard._m"}  # a submodule, not the facade
    assert import_cycles(graph) == [["modelyard", "modelyard._m", "modelyard"]]


# -- size ----------------------------------------------------------------------------------------------


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_core_module_is_over_600_lines() -> None:
    big = {str(p.relative_to(REPO)): n for p in _core_modules().values() if (n := _lines(p)) > MAX_LINES}
    assert not big, f"core modules over {MAX_LINES} lines (split them by concept): {big}"


@pytest.mark.parametrize("src", INTEGRATIONS, ids=lambda p: p.parent.name)
def test_no_integration_src_is_over_600_lines(src: Path) -> None:
    total = sum(_lines(p) for p in src.rglob("*.py"))
    assert total <= MAX_LINES, (f"{src.relative_to(REPO)} has {total} lines; an integration holds only what is "
                                "framework specific, the shared rules live in core")


# -- single owners --------------------------------------------------------------------------------------


def _python_files() -> Iterator[Path]:
    yield from (CORE / PACKAGE).rglob("*.py")
    for src in INTEGRATIONS:
        yield from src.rglob("*.py")


def _owners_of(pattern: str) -> list[str]:
    regex = re.compile(pattern)
    return sorted(str(p.relative_to(REPO)) for p in _python_files() if regex.search(p.read_text(encoding="utf-8")))


def test_one_owner_of_the_object_key_layout() -> None:
    # Building or parsing "<...>/models/<model id>/<version>/<file>" or a package's member and manifest keys
    # anywhere else means two places must change together.
    layout = "core/src/modelyard/_storage/layout.py"
    assert _owners_of(r"/models/") == [layout]
    assert _owners_of(r"package_key\(|\{MANIFEST_NAME\}") == [layout]


def test_one_atomic_write_and_one_chunked_hash() -> None:
    # Every durable write goes through modelyard._files.atomic_path, every streamed sha256 through
    # modelyard._files.copy_hashing (one-shot hashlib.sha256(data) of bytes in memory is fine).
    assert _owners_of(r"os\.fsync\(") == ["core/src/modelyard/_files.py"]
    assert _owners_of(r"hashlib\.sha256\(\)") == ["core/src/modelyard/_files.py"]


# -- the framework list and the pytest plugin --------------------------------------------------------------


def test_the_framework_list_is_the_one_ruff_bans() -> None:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r"banned-module-level-imports\s*=\s*\[([^\]]*)\]", text)
    assert match, "pyproject.toml lost ruff's banned-module-level-imports"
    assert tuple(re.findall(r"\"([^\"]+)\"", match[1])) == FRAMEWORK_MODULES


def test_the_pytest_plugin_is_registered_and_import_light() -> None:
    text = (REPO / "core" / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'\[project\.entry-points\.pytest11\]\s*\nmodelyard = "modelyard\.testing\.pytest_plugin"',
                     text)
    heavy = ("moto", "s3fs", "boto3", "botocore", "psycopg", "flask", *FRAMEWORK_MODULES)
    assert frameworks_imported_by("import modelyard.testing.pytest_plugin", modules=heavy) == []
