from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard.testing.contract import CallbackContract, TrainingRun
from modelyard_transformers import ModelyardCallback

from ._tiny import ID2LABEL, run


class TestTransformersContract(CallbackContract):
    integration_name = "transformers"

    def train(self, tmp_path: Path, **callback_kwargs: Any) -> TrainingRun:
        callback = ModelyardCallback(**callback_kwargs)
        run(tmp_path / "out", [callback], max_steps=6, save_steps=2)  # returns once its uploads are done
        assert callback.output_model is not None
        return TrainingRun(model_ids=[callback.output_model.id], checkpoints=3,
                           labels={name: i for i, name in ID2LABEL.items()}, callback_class=ModelyardCallback,
                           model_name="BertForSequenceClassification")
