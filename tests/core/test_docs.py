"""The Python examples in the core docs run as written (a page's blocks run in order as one script)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.testing import run_python_blocks

DOCS = Path(__file__).resolve().parents[2] / "docs"
CORE_PAGES = ["api.md", "configuration.md", "uploads.md"]


@pytest.mark.parametrize("name", CORE_PAGES)
def test_docs_python_examples_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_python_blocks(DOCS / name)
