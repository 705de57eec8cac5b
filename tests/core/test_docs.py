"""The Python examples in the core docs run as written (a page's blocks run in order as one script)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
CORE_PAGES = ["api.md", "configuration.md", "uploads.md"]


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize("name", CORE_PAGES)
def test_docs_python_examples_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = DOCS / name
    blocks = python_blocks(page)
    assert blocks, f"{name} has no python examples"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{name}"}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"{name}[block {i}]", "exec"), namespace)  # noqa: S102 - our own docs
        except Exception as e:  # pragma: no cover - the message says which block broke
            raise AssertionError(f"{name} block {i} failed: {type(e).__name__}: {e}\n{block}") from e
