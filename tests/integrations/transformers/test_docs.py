"""docs/transformers.md's Python blocks run as written, given a model, arguments and datasets (the reader's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.testing import run_python_blocks

from ._tiny import TokenIds, arguments, tiny_model

DOC = Path(__file__).resolve().parents[3] / "docs" / "transformers.md"


def test_docs_transformers_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace = {"model": tiny_model(), "args": arguments(tmp_path / "out"), "train": TokenIds(),
                 "val": TokenIds(16, seed=1)}
    namespace = run_python_blocks(DOC, namespace)
    assert namespace["model_id"]
