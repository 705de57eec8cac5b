"""docs/lightning.md's Python blocks run as written, given a module and a datamodule (the reader's own)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.testing import run_python_blocks

from ._toy import toy_classes

DOC = Path(__file__).resolve().parents[3] / "docs" / "lightning.md"


# The page's Trainer keeps Lightning's defaults, which warn about TensorBoard not being installed and about
# the toy data's 4 batches being fewer than the default logging interval.
@pytest.mark.filterwarnings("ignore:Starting from v1.9.0:UserWarning")
@pytest.mark.filterwarnings("ignore:The number of training batches:UserWarning")
# Resuming into the same run folder, as the page does, makes Lightning note that the folder is not empty.
@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty:UserWarning")
def test_docs_lightning_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    module_class, data_class = toy_classes("lightning.pytorch")
    # What the page assumes the reader has: their LightningModule, datamodule, and a fresh module to load into.
    namespace = {"model": module_class(), "datamodule": data_class(), "module": module_class()}
    # A block written for the standalone `pytorch_lightning` package is the other namespace's variant of the
    # first one: it runs on its own, not in the sequence.
    namespace = run_python_blocks(DOC, namespace, min_blocks=3,
                                  on_its_own=lambda block: "import pytorch_lightning" in block)
    assert namespace["model_id"]
