"""The read side: rebuild a model from the registry, resume a Trainer from a recorded checkpoint."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertForSequenceClassification

import modelyard
from modelyard_transformers import ModelyardCallback, checkpoint_path, from_registry

from ._tiny import ID2LABEL, SEQ, VOCAB, run, tiny_model


def logits(model: torch.nn.Module) -> torch.Tensor:
    ids = torch.arange(4 * SEQ).reshape(4, SEQ) % VOCAB
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits


def trained(tmp_path: Path, **callback_kwargs: object) -> tuple[str, torch.nn.Module]:
    callback = ModelyardCallback(**callback_kwargs)  # type: ignore[arg-type]
    trainer = run(tmp_path / "out", [callback], max_steps=4, save_steps=2)
    modelyard.OutputModel.wait_for_uploads()
    assert callback.output_model is not None
    return callback.output_model.id, trainer.model


def test_from_registry_rebuilds_the_final_model_with_equal_logits(tmp_path: Path) -> None:
    model_id, in_memory = trained(tmp_path)
    loaded = from_registry(AutoModelForSequenceClassification, model_id)
    assert isinstance(loaded, BertForSequenceClassification)
    assert loaded.config.id2label == ID2LABEL
    assert torch.equal(logits(loaded), logits(in_memory))
    # an earlier checkpoint, by version, with a concrete class
    first = from_registry(BertForSequenceClassification, model_id, version=1)
    assert not torch.equal(logits(first), logits(in_memory))


def test_from_registry_without_training_state(tmp_path: Path) -> None:
    model_id, in_memory = trained(tmp_path, include_training_state=False)
    assert torch.equal(logits(from_registry(AutoModelForSequenceClassification, model_id)), logits(in_memory))
    with pytest.raises(modelyard.NotFoundError, match="training state"):
        checkpoint_path(model_id)
    with pytest.raises(modelyard.NotFoundError, match="trainer_state.json"):
        checkpoint_path(model_id, version=1)


def test_from_registry_never_trusts_remote_code_or_pickles(tmp_path: Path) -> None:
    model_id, _ = trained(tmp_path)
    with pytest.raises(modelyard.InvalidArgumentError, match="remote code"):
        from_registry(AutoModelForSequenceClassification, model_id, trust_remote_code=True)
    with pytest.raises(modelyard.InvalidArgumentError, match="safetensors"):
        from_registry(AutoModelForSequenceClassification, model_id, use_safetensors=False)


class _Canary:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def _package(tmp_path: Path, files: dict[str, bytes]) -> str:
    folder = tmp_path / "pkg"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    out = modelyard.OutputModel(modelyard.Task.init(project_name="p", task_name="t"))
    out.update_weights_package(weights_path=str(folder))
    modelyard.OutputModel.wait_for_uploads()
    return out.id


def test_a_pickle_posing_as_safetensors_is_refused_and_never_run(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    config = json.dumps(tiny_model().config.to_dict()).encode()
    model_id = _package(tmp_path, {"config.json": config, "model.safetensors": pickle.dumps(_Canary(canary))})
    with pytest.raises(modelyard.UnsafeFormatError, match="not a safetensors file"):
        from_registry(AutoModelForSequenceClassification, model_id)
    assert not canary.exists()


def test_a_version_without_safetensors_is_refused(tmp_path: Path) -> None:
    config = json.dumps(tiny_model().config.to_dict()).encode()
    model_id = _package(tmp_path, {"config.json": config, "pytorch_model.bin": pickle.dumps({"w": 1})})
    with pytest.raises(modelyard.UnsafeFormatError, match="no \\*.safetensors"):
        from_registry(AutoModelForSequenceClassification, model_id)


@pytest.mark.parametrize("model_type", ["bert", "evil-custom"])
def test_code_named_by_the_config_never_runs(tmp_path: Path, model_type: str) -> None:
    model_id, _ = trained(tmp_path)
    folder = Path(checkpoint_path(model_id))
    canary = tmp_path / "canary"
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = model_type
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig",
                          "AutoModelForSequenceClassification": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "evil.py").write_text(f"open({str(canary)!r}, 'w').close()\n")
    out = modelyard.OutputModel(modelyard.Task.init(project_name="p", task_name="t"))
    out.update_weights_package(weights_path=str(folder))
    modelyard.OutputModel.wait_for_uploads()
    if model_type == "bert":  # a known architecture loads with transformers' own class
        loaded = from_registry(AutoModelForSequenceClassification, out.id)
        assert isinstance(loaded, BertForSequenceClassification)
    else:  # an unknown one is refused rather than imported from the package
        with pytest.raises(ValueError):
            from_registry(AutoModelForSequenceClassification, out.id)
    assert not canary.exists()


def test_resume_from_a_recorded_checkpoint_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    # a constant learning rate: the schedule of a 4-step run would otherwise differ from a 6-step run's
    full = run(tmp_path / "full", [], max_steps=6, save_steps=2, lr_scheduler_type="constant")

    first = ModelyardCallback()
    run(tmp_path / "first", [first], max_steps=4, save_steps=2, lr_scheduler_type="constant")
    modelyard.OutputModel.wait_for_uploads()
    assert first.output_model is not None
    path = checkpoint_path(first.output_model.id)
    assert Path(path).name == "checkpoint-4"

    second = ModelyardCallback()
    resumed = run(tmp_path / "second", [second], max_steps=6, save_steps=2, lr_scheduler_type="constant",
                  resume_from_checkpoint=path)
    modelyard.OutputModel.wait_for_uploads()
    assert resumed.state.global_step == 6
    assert second.output_model is not None
    assert [v.iteration for v in modelyard.Model(second.output_model.id).versions] == [6]
    torch.testing.assert_close(logits(resumed.model), logits(full.model))
