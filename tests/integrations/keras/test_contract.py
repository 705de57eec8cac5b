"""The contract every modelyard integration meets, run on a real (tiny) Keras fit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard.testing.contract import CallbackContract, TrainingRun
from modelyard_keras import ModelyardCallback

from .helpers import CLASS_NAMES, fit, make_classifier


class TestKerasContract(CallbackContract):
    integration_name = "keras"

    def train(self, tmp_path: Path, **callback_kwargs: Any) -> TrainingRun:
        callback = ModelyardCallback(class_names=CLASS_NAMES, **callback_kwargs)
        fit(make_classifier(), callback, epochs=3)
        assert callback.model_id is not None
        return TrainingRun(model_ids=[callback.model_id], checkpoints=3,
                           labels={name: i for i, name in enumerate(CLASS_NAMES)},
                           callback_class=ModelyardCallback, model_name="tiny")
