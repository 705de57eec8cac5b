"""Label enumerations: given, or discovered in each usual place, and checked against the output size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from modelyard import LabelError, Model
from modelyard_lightning import ModelyardCallback

from ._toy import make_trainer, toy_classes

ABC = {"a": 0, "b": 1, "c": 2}


def run(tmp_path: Path, callback: ModelyardCallback | None = None, *, module: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None) -> dict[str, int]:
    callback = callback or ModelyardCallback()
    module_class, data_class = toy_classes()
    trainer = make_trainer("lightning.pytorch", tmp_path, [callback], enable_checkpointing=False, max_steps=1,
                           limit_val_batches=0)
    trainer.fit(module_class(**(module or {})), data_class(**(data or {})))
    model = Model(callback.model_ids[0])
    assert callback.labels == (model.labels or None)
    return model.labels


@pytest.mark.parametrize(("module", "data", "where"), [
    ({"label2id": {"a": 0, "b": 1, "c": 2}}, {}, "module.hparams.label2id"),
    ({"id2label": {"0": "a", "1": "b", "2": "c"}}, {}, "module.hparams.id2label"),  # JSON-style keys
    ({"id2label": {2: "c", 0: "a", 1: "b"}}, {}, "module.hparams.id2label"),
    ({"class_names": ["a", "b", "c"]}, {}, "module.hparams.class_names"),
    ({"classes": ("a", "b", "c")}, {}, "module.hparams.classes"),
    ({"labels": ["a", "b", "c"]}, {}, "module.hparams.labels"),
    ({}, {"class_names": ["a", "b", "c"]}, "datamodule.hparams.class_names"),
    ({}, {"attributes": {"classes": ["a", "b", "c"]}}, "datamodule.classes"),
    ({}, {"attributes": {"label2id": dict(ABC)}}, "datamodule.label2id"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_labels_are_discovered(tmp_path: Path, module: dict[str, Any], data: dict[str, Any],
                               where: str) -> None:
    callback = ModelyardCallback()
    assert run(tmp_path, callback, module=module, data=data) == ABC
    assert Model(callback.model_ids[0]).config_dict["labels_from"] == where


def test_module_hyperparameters_come_before_the_datamodule(tmp_path: Path) -> None:
    labels = run(tmp_path, module={"class_names": ["a", "b", "c"]}, data={"class_names": ["x", "y", "z"]})
    assert labels == ABC


def test_an_explicit_enumeration_wins(tmp_path: Path) -> None:
    assert run(tmp_path, ModelyardCallback(label_enumeration=["x", "y", "z"]),
               module={"class_names": ["a", "b", "c"]}) == {"x": 0, "y": 1, "z": 2}
    assert run(tmp_path / "2", ModelyardCallback(label_enumeration={"x": 2, "y": 1, "z": 0})) == \
        {"x": 2, "y": 1, "z": 0}


def test_things_that_are_not_label_enumerations_are_ignored(tmp_path: Path) -> None:
    # A datamodule's `labels` is often a tensor of targets, and `classes` a count: neither is an enumeration.
    labels = run(tmp_path, data={"attributes": {"labels": torch.tensor([0, 1, 2, 1]), "classes": 3}})
    assert labels == {}


def test_discovery_can_be_turned_off(tmp_path: Path) -> None:
    callback = ModelyardCallback(discover_labels=False)
    assert run(tmp_path, callback, module={"class_names": ["a", "b", "c"]}) == {}


def test_labels_that_do_not_fit_the_output_size_fail_before_training(tmp_path: Path) -> None:
    module_class, data_class = toy_classes()
    callback = ModelyardCallback()
    trainer = make_trainer("lightning.pytorch", tmp_path, [callback], enable_checkpointing=False, max_steps=1)
    with pytest.raises(LabelError, match=r"module.hparams.class_names .*4 labels.* 3 outputs .*num_classes"):
        trainer.fit(module_class(class_names=["a", "b", "c", "d"]), data_class())
    assert trainer.global_step == 0
    with pytest.raises(LabelError, match="do not fit"):
        make_trainer("lightning.pytorch", tmp_path, [ModelyardCallback(label_enumeration={"a": 0, "b": 7})],
                     enable_checkpointing=False, max_steps=1).fit(module_class(), data_class())


def test_invalid_discovered_labels_name_where_they_were_found(tmp_path: Path) -> None:
    module_class, data_class = toy_classes()
    trainer = make_trainer("lightning.pytorch", tmp_path, [ModelyardCallback()], enable_checkpointing=False,
                           max_steps=1)
    with pytest.raises(LabelError, match=r"module.hparams.class_names.*'a'"):
        trainer.fit(module_class(class_names=["a", "a", "b"]), data_class())


@pytest.mark.parametrize("bad", [{"a": "0"}, {"a": True}, {"": 0}, {"a": 0, "b": 0}, "abc"])
def test_invalid_explicit_labels_are_refused_at_construction(bad: Any) -> None:
    with pytest.raises(LabelError):
        ModelyardCallback(label_enumeration=bad)
