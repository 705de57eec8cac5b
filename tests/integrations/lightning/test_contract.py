"""modelyard's integration contract, run on real Lightning training in both namespaces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelyard import Model
from modelyard.testing.contract import CallbackContract, TrainingRun

from ._toy import callback_class, checkpoint_class, local_checkpoints, make_trainer, toy_classes

CLASS_NAMES = ["circle", "square", "triangle"]


class LightningContract(CallbackContract):
    namespace = "lightning.pytorch"

    def train(self, tmp_path: Path, **callback_kwargs: Any) -> TrainingRun:
        if self.namespace == "pytorch_lightning":
            pytest.importorskip("pytorch_lightning")
        module_class, data_class = toy_classes(self.namespace)
        callback = callback_class(self.namespace)(**callback_kwargs)
        checkpoint = checkpoint_class(self.namespace)(dirpath=tmp_path / "ckpt", monitor="val_loss",
                                                      save_top_k=2, save_last=True)
        trainer = make_trainer(self.namespace, tmp_path, [callback, checkpoint], max_epochs=3)
        trainer.fit(module_class(class_names=CLASS_NAMES), data_class())
        kept = local_checkpoints(tmp_path / "ckpt")
        return TrainingRun(model_ids=callback.model_ids, checkpoints=len(kept),
                           labels={name: i for i, name in enumerate(CLASS_NAMES)},
                           callback_class=type(callback), model_name=module_class.__name__, extra={"kept": kept})

    def test_storage_mirrors_the_trainer(self, contract_run: TrainingRun) -> None:
        versions = Model(contract_run.model_ids[0]).versions
        assert {v.metadata["checkpoint_file"] for v in versions} == contract_run.extra["kept"]


class TestLightningContract(LightningContract):
    integration_name = "lightning"
    namespace = "lightning.pytorch"


class TestPytorchLightningContract(LightningContract):
    integration_name = "pytorch_lightning"
    namespace = "pytorch_lightning"
