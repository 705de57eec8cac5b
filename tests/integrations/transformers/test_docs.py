"""docs/transformers.md's Python blocks run as written, given a model, arguments and datasets (the reader's)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ._tiny import TokenIds, arguments, tiny_model

DOC = Path(__file__).resolve().parents[3] / "docs" / "transformers.md"


def test_docs_transformers_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace = {"model": tiny_model(), "args": arguments(tmp_path / "out"), "train": TokenIds(),
                 "val": TokenIds(16, seed=1)}
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert blocks
    for i, block in enumerate(blocks):
        exec(compile(block, f"transformers.md[block {i}]", "exec"), namespace)  # noqa: S102 - our own docs
    assert namespace["model_id"]
