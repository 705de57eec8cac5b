"""Every item of RELIABILITY.md's checklist has a test whose name carries its id (``test_s7_...``).

The ids are read from ``RELIABILITY.md`` when it is beside the repository (``../shared/RELIABILITY.md``, as in
CI), else from the list below. Test names are collected with :mod:`ast`, without importing or running
anything, so the check is cheap and cannot be fooled by a test that is skipped at import time. It proves
coverage is claimed by name; each named test proves its own promise.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
RELIABILITY = REPO.parent / "shared" / "RELIABILITY.md"

#: The checklist of RELIABILITY.md, for checkouts without ``../shared``.
KNOWN_IDS = [*(f"S{i}" for i in range(1, 11)), "I1", "I2", "I3", *(f"R{i}" for i in range(1, 13))]

_ID = re.compile(r"\b([SIR][0-9]{1,2})\b")


def checklist_ids() -> list[str]:
    """Return the checklist ids, from RELIABILITY.md when present."""
    if not RELIABILITY.is_file():
        return KNOWN_IDS
    text = RELIABILITY.read_text(encoding="utf-8")
    _, found, checklist = text.partition("## The checklist")
    assert found, f"{RELIABILITY} has no '## The checklist' section"
    ids = []
    for line in checklist.splitlines():
        # Items start a line ("- S1 ...") and sometimes share one ("... refused. S3 a pre-planted ...").
        ids += [m for m in _ID.findall(line) if m not in ids]
    return ids


def collect_test_names() -> dict[str, list[str]]:
    """Map each test function name under tests/ to the files defining it (module level and in classes)."""
    names: dict[str, list[str]] = {}
    for path in sorted(TESTS.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
                names.setdefault(node.name, []).append(str(path.relative_to(REPO)))
    return names


def covering(item: str, names: dict[str, list[str]]) -> list[str]:
    """Return the test names that carry ``item`` as a whole ``_``-separated token (``s1`` is not ``s10``)."""
    token = item.lower()
    return sorted(name for name in names if token in name.split("_")[1:])


def test_checklist_ids_are_read_in_full() -> None:
    ids = checklist_ids()
    assert ids == sorted(set(ids), key=ids.index)
    assert set(KNOWN_IDS) <= set(ids), f"RELIABILITY.md lost items: {sorted(set(KNOWN_IDS) - set(ids))}"


def test_every_checklist_item_has_a_named_test() -> None:
    names = collect_test_names()
    missing = [item for item in checklist_ids() if not covering(item, names)]
    assert not missing, (
        f"no test under tests/ carries these RELIABILITY.md ids in its name: {missing}; name a test that "
        f"proves the item test_<id>_<what it proves> (for example test_{missing[0].lower()}_...)")


def test_token_matching_is_exact() -> None:
    names = {"test_s10_names_are_data": ["x"], "test_r1_retries": ["x"], "test_sr1_other": ["x"]}
    assert covering("S10", names) == ["test_s10_names_are_data"]
    assert covering("S1", names) == []
    assert covering("R1", names) == ["test_r1_retries"]
