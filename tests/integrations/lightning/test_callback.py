"""ModelyardCallback on real Trainer runs: versions, tags, retention, config, task, both namespaces."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

import modelyard_lightning
from modelyard import Model, OutputModel, Task
from modelyard_lightning import ModelyardCallback

from ._toy import (
    NAMESPACES,
    callback_class,
    checkpoint_class,
    lightning,
    local_checkpoints,
    make_trainer,
    stored_version_folders,
    toy_classes,
    versions_by_file,
)


@pytest.fixture(params=NAMESPACES)
def namespace(request: pytest.FixtureRequest) -> str:
    if request.param == "pytorch_lightning":
        pytest.importorskip("pytorch_lightning")
    return str(request.param)


def fit(namespace: str, tmp_path: Path, callback: Any, *checkpoints: Any,
        module_kwargs: dict[str, Any] | None = None, data_kwargs: dict[str, Any] | None = None,
        **trainer_kwargs: Any) -> Any:
    module_class, data_class = toy_classes(namespace)
    trainer = make_trainer(namespace, tmp_path, [callback, *checkpoints], **trainer_kwargs)
    trainer.fit(module_class(**(module_kwargs or {})), data_class(**(data_kwargs or {})))
    return trainer


# -- checkpoints become versions ----------------------------------------------------------------------


def test_each_namespace_gets_its_own_callback_class(namespace: str) -> None:
    cls = callback_class(namespace)
    assert issubclass(cls, lightning(namespace).Callback)
    assert cls.namespace == namespace


def test_top_k_rotation_is_mirrored_in_storage(namespace: str, tmp_path: Path, fresh_modelyard: Path) -> None:
    callback = callback_class(namespace)()
    checkpoint = checkpoint_class(namespace)(dirpath=tmp_path / "ckpt", monitor="val_loss", mode="min",
                                             save_top_k=2, every_n_train_steps=1,
                                             save_on_train_epoch_end=False)
    fit(namespace, tmp_path, callback, checkpoint, max_epochs=3, module_kwargs={"lr": 0.05})
    (model_id,) = callback.model_ids
    model = Model(model_id)
    kept = local_checkpoints(tmp_path / "ckpt")
    assert len(kept) == 2
    # Storage holds exactly what the trainer keeps: one version (one stored folder) per local file.
    assert set(versions_by_file(model)) == kept
    assert len(stored_version_folders(fresh_modelyard, model_id)) == len(kept)
    assert all(v.state == "ready" for v in model.versions)
    # More files were saved than kept: the versions of the rotated-out ones were removed.
    assert max(v.version for v in model.versions) >= 3
    best = versions_by_file(model)[Path(checkpoint.best_model_path).name]
    assert "best" in best.tags
    assert best.metadata["monitor"] == "val_loss"
    assert math.isclose(best.metadata["score"], float(checkpoint.best_model_score), rel_tol=1e-6)
    newest = max(model.versions, key=lambda v: v.version)
    assert "last" in newest.tags
    assert sum("best" in v.tags for v in model.versions) == sum("last" in v.tags for v in model.versions) == 1


def test_no_scratch_file_outlives_its_upload(tmp_path: Path) -> None:
    """Our hard links to rotated-out checkpoints go as soon as their upload settles, not at the end."""
    scratch = tmp_path / "tmp"  # tempfile.tempdir in these tests
    seen: list[int] = []

    class Probe(lightning("lightning.pytorch").Callback):  # type: ignore[misc,name-defined]
        def on_train_batch_end(self, *args: Any) -> None:
            # os.walk, not rglob: the background thread removes folders while we count.
            seen.append(sum(len(files) for _, _, files in os.walk(scratch)))

    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=1, every_n_train_steps=1)
    fit("lightning.pytorch", tmp_path, ModelyardCallback(), Probe(), checkpoint, max_epochs=3)
    assert len(seen) == 12
    assert max(seen) < 12, seen  # 12 saves would leave 24 links (weights + .ckpt) without the cleanup
    assert not any(p.is_file() for p in scratch.rglob("*"))


def test_iteration_is_the_global_step_and_metadata_follows_the_file(tmp_path: Path) -> None:
    callback = ModelyardCallback(mirror_retention=False)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{epoch}-{step}",
                                                        save_top_k=-1, every_n_epochs=1)
    trainer = fit("lightning.pytorch", tmp_path, callback, checkpoint, max_epochs=3)
    versions = Model(callback.model_ids[0]).versions
    assert [v.iteration for v in versions] == [4, 8, 12]
    assert trainer.global_step == 12
    for v, epoch in zip(versions, range(3), strict=True):
        assert v.metadata["checkpoint_file"] == f"epoch={epoch}-step={v.iteration}.ckpt"
        assert v.metadata["epoch"] == epoch
        assert v.metadata["global_step"] == v.iteration
        assert v.metadata["monitor"] is None and v.metadata["score"] is None


def test_save_last_is_tagged_last_and_replaced_versions_are_removed(tmp_path: Path,
                                                                    fresh_modelyard: Path) -> None:
    callback = ModelyardCallback()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val_loss",
                                                        save_top_k=1, save_last=True)
    fit("lightning.pytorch", tmp_path, callback, checkpoint, max_epochs=3, module_kwargs={"lr": 0.05})
    model = Model(callback.model_ids[0])
    kept = local_checkpoints(tmp_path / "ckpt")
    assert "last.ckpt" in kept and len(kept) == 2
    by_file = versions_by_file(model)
    assert set(by_file) == kept
    assert "last" in by_file["last.ckpt"].tags
    assert "best" in by_file[Path(checkpoint.best_model_path).name].tags
    assert len(stored_version_folders(fresh_modelyard, model.id)) == 2


def test_save_last_link_records_no_extra_version(tmp_path: Path) -> None:
    callback = ModelyardCallback()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=1, save_last="link")
    fit("lightning.pytorch", tmp_path, callback, checkpoint, max_epochs=2)
    model = Model(callback.model_ids[0])
    assert (tmp_path / "ckpt" / "last.ckpt").is_symlink()
    (version,) = model.versions  # last.ckpt is a link to the top-1 file: one file, one version
    assert set(version.tags) == {"best", "last"}


def test_mirror_retention_false_keeps_every_version(tmp_path: Path) -> None:
    callback = ModelyardCallback(mirror_retention=False)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=1, every_n_train_steps=2)
    fit("lightning.pytorch", tmp_path, callback, checkpoint, max_epochs=2)
    assert len(local_checkpoints(tmp_path / "ckpt")) == 1
    versions = Model(callback.model_ids[0]).versions
    assert [v.iteration for v in versions] == [2, 4, 6, 8]
    assert all(v.state == "ready" for v in versions)


class _PinFirstVersion(Callback):
    """Pin version 1 as soon as it is ready, before the next checkpoint can displace it.

    Pinning from a plugin hook would race the callback's retention thread; this waits, inside the training
    loop, until version 1 is durable and pins it before step 3's checkpoint is taken.
    """

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        if trainer.global_step != 3:
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ids = self.recorder.model_ids
            versions = Model(ids[0]).versions if ids else []
            if versions and versions[0].state == "ready":
                Model(ids[0]).pin_version(1)
                return
            time.sleep(0.05)
        raise AssertionError("version 1 never became ready")


def test_pinned_versions_survive_rotation(tmp_path: Path) -> None:
    callback = ModelyardCallback()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=1, every_n_train_steps=2)
    fit("lightning.pytorch", tmp_path, callback, checkpoint, _PinFirstVersion(callback), max_epochs=2)
    versions = Model(callback.model_ids[0]).versions
    assert [v.version for v in versions] == [1, 4]
    assert versions[0].pinned
    assert versions[0].metadata["checkpoint_file"] not in local_checkpoints(tmp_path / "ckpt")


def test_weights_only_checkpoints_are_recorded(tmp_path: Path) -> None:
    callback = ModelyardCallback()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=2, monitor="val_loss",
                                                        save_weights_only=True)
    fit("lightning.pytorch", tmp_path, callback, checkpoint, max_epochs=3)
    model = Model(callback.model_ids[0])
    assert set(versions_by_file(model)) == local_checkpoints(tmp_path / "ckpt")
    assert all(v.metadata["weights_only"] for v in model.versions)


def test_every_model_checkpoint_gets_its_own_model(tmp_path: Path) -> None:
    callback = ModelyardCallback(name="toy")
    by_loss = ModelCheckpoint(dirpath=tmp_path / "a", monitor="val_loss", save_top_k=1)
    by_step = ModelCheckpoint(dirpath=tmp_path / "b", every_n_train_steps=3, save_top_k=1)
    fit("lightning.pytorch", tmp_path, callback, by_loss, by_step, max_epochs=2)
    first, second = (Model(i) for i in callback.model_ids)
    assert first.name == "toy [val_loss]" and second.name == "toy [checkpoint 1]"
    assert versions_by_file(first).keys() == local_checkpoints(tmp_path / "a")
    assert versions_by_file(second).keys() == local_checkpoints(tmp_path / "b")
    assert first.config_dict["checkpoint"]["monitor"] == "val_loss"
    assert first.task == second.task


def test_without_training_state_only_weights_are_stored(tmp_path: Path) -> None:
    callback = ModelyardCallback(save_training_state=False)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=1)
    fit("lightning.pytorch", tmp_path, callback, checkpoint, max_epochs=1)
    model = Model(callback.model_ids[0])
    files = model.get_weights_package(raise_on_error=True)
    assert [Path(f).name for f in files] == ["model.safetensors"]
    with pytest.raises(LookupError, match="save_training_state=False"):
        modelyard_lightning.checkpoint_path(model.id)


def test_package_holds_the_checkpoint_and_weights_equal_to_it(tmp_path: Path) -> None:
    callback = ModelyardCallback()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=1)
    fit("lightning.pytorch", tmp_path, callback, checkpoint, max_epochs=2)
    model = Model(callback.model_ids[0])
    folder = Path(str(model.get_weights_package(return_path=True, raise_on_error=True)))
    (ckpt,) = local_checkpoints(tmp_path / "ckpt")
    assert sorted(p.name for p in folder.iterdir()) == sorted([ckpt, "model.safetensors"])
    assert (folder / ckpt).read_bytes() == (tmp_path / "ckpt" / ckpt).read_bytes()
    saved = torch.load(folder / ckpt, weights_only=True)["state_dict"]
    from modelyard import load_weights

    stored = load_weights(folder / "model.safetensors", backend="torch")
    assert stored.keys() == saved.keys()
    assert all(torch.equal(stored[k], saved[k]) for k in saved)


# -- no ModelCheckpoint ---------------------------------------------------------------------------------


def test_without_model_checkpoint_the_final_model_is_recorded(namespace: str, tmp_path: Path,
                                                              fresh_modelyard: Path) -> None:
    callback = callback_class(namespace)()
    trainer = fit(namespace, tmp_path, callback, enable_checkpointing=False, max_epochs=2)
    (model_id,) = callback.model_ids
    (version,) = Model(model_id).versions
    assert version.state == "ready" and version.tags == ["last", "final"]  # the final model, as in every integration
    assert version.iteration == trainer.global_step == 8
    assert version.metadata["final"] is True
    assert Path(modelyard_lightning.checkpoint_path(model_id)).name == "final.ckpt"
    left = [p for p in tmp_path.glob("**/*") if fresh_modelyard not in p.parents and p.is_file()]
    assert not left, "the callback must leave no file behind"


# -- read side --------------------------------------------------------------------------------------


def test_load_weights_reproduces_the_outputs(namespace: str, tmp_path: Path) -> None:
    callback = callback_class(namespace)()
    module_class, data_class = toy_classes(namespace)
    trained = module_class()
    trainer = make_trainer(namespace, tmp_path, [callback], enable_checkpointing=False, max_epochs=2)
    trainer.fit(trained, data_class())
    fresh = module_class()
    x = torch.randn(5, 4)
    assert not torch.allclose(fresh(x), trained(x))
    result = modelyard_lightning.load_weights(fresh, callback.model_ids[0])
    assert not result.missing_keys and not result.unexpected_keys
    with torch.no_grad():
        assert torch.equal(fresh(x), trained(x))


def test_resume_from_the_registry_continues_training(tmp_path: Path) -> None:
    module_class, data_class = toy_classes()
    first = ModelyardCallback()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val_loss", save_top_k=2,
                                                        save_last=True)
    fit("lightning.pytorch", tmp_path, first, checkpoint, max_epochs=2)
    path = modelyard_lightning.checkpoint_path(first.model_ids[0])
    assert Path(path).name == "last.ckpt" and not Path(path).is_relative_to(tmp_path / "ckpt")

    second = ModelyardCallback()
    again = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val_loss", save_top_k=2,
                                                   save_last=True)
    trainer = make_trainer("lightning.pytorch", tmp_path, [second, again], max_epochs=4)
    with pytest.warns(UserWarning, match="exists and is not empty"):  # Lightning's, for the resumed folder
        trainer.fit(module_class(), data_class(), ckpt_path=path)
    assert trainer.global_step == 16  # 8 restored + 8 new
    resumed = Model(second.model_ids[0])
    assert resumed.id != first.model_ids[0]
    assert min(v.iteration for v in resumed.versions) > 8  # the restored files are not re-recorded
    assert set(versions_by_file(resumed)) <= local_checkpoints(tmp_path / "ckpt")


def test_version_selection(tmp_path: Path) -> None:
    callback = ModelyardCallback(mirror_retention=False)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val_loss", save_top_k=1,
                                                        save_last=True)
    fit("lightning.pytorch", tmp_path, callback, checkpoint, max_epochs=2, module_kwargs={"lr": 0.05})
    model_id = callback.model_ids[0]
    model = Model(model_id)
    last = next(v for v in model.versions if "last" in v.tags)
    best = next(v for v in model.versions if "best" in v.tags)
    assert Path(modelyard_lightning.checkpoint_path(model_id)).name == last.metadata["checkpoint_file"]
    best_path = modelyard_lightning.checkpoint_path(model_id, "best")
    assert Path(best_path).name == best.metadata["checkpoint_file"]
    first = model.versions[0].metadata["checkpoint_file"]
    assert Path(modelyard_lightning.checkpoint_path(model_id, 1)).name == first
    for bad in ("newest", True, 1.5):
        with pytest.raises(ValueError, match="version must be"):
            modelyard_lightning.checkpoint_path(model_id, bad)  # type: ignore[arg-type]
    with pytest.raises(LookupError):
        modelyard_lightning.checkpoint_path(model_id, 99)


# -- config and task ------------------------------------------------------------------------------------


def test_config_holds_hparams_and_trainer_settings_json_safe(tmp_path: Path) -> None:
    callback = ModelyardCallback()
    odd = {"path": tmp_path / "x", "nan": float("nan"), "tensor": torch.tensor([1.5, 2.5]),
           "scalar": torch.tensor(3), "fn": math.sqrt, "nested": {1: (1, 2)}, "big": torch.zeros(10_000)}
    fit("lightning.pytorch", tmp_path, callback, enable_checkpointing=False, max_epochs=1,
        accumulate_grad_batches=2, module_kwargs={"lr": 0.25, "extra_settings": odd},
        data_kwargs={"batch_size": 4})
    config = Model(callback.model_ids[0]).config_dict
    assert config["module"]["hparams"]["lr"] == 0.25
    assert config["module"]["class"].endswith("ToyClassifier")
    assert config["datamodule"]["hparams"]["batch_size"] == 4
    settings = config["module"]["hparams"]["extra_settings"]
    assert settings["path"] == str(tmp_path / "x") and settings["nan"] == "nan"
    assert settings["tensor"] == [1.5, 2.5] and settings["scalar"] == 3 and settings["fn"] == "math.sqrt"
    assert settings["nested"] == {"1": [1, 2]} and isinstance(settings["big"], str)
    trainer = config["trainer"]
    assert trainer["max_epochs"] == 1 and trainer["accumulate_grad_batches"] == 2
    assert trainer["precision"] == "32-true" and trainer["strategy"] == "SingleDeviceStrategy"
    assert config["versions"]["namespace"] == "lightning.pytorch"


def test_task_argument_and_current_task(tmp_path: Path) -> None:
    given = Task.init(project_name="given", task_name="mine")
    callback = ModelyardCallback(task=given)
    fit("lightning.pytorch", tmp_path, callback, enable_checkpointing=False, max_epochs=1)
    model = Model(callback.model_ids[0])
    # named after the module class, not the task (the same rule in every integration)
    assert model.task == given.id and model.name == "ToyClassifier" and model.project == "given"
    assert given.status == "in_progress"  # not ours to close

    current = Task.init(project_name="current", task_name="run")
    callback = ModelyardCallback()
    fit("lightning.pytorch", tmp_path / "2", callback, enable_checkpointing=False, max_epochs=1)
    assert Model(callback.model_ids[0]).task == current.id


def test_task_created_from_the_logger_or_the_module(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import CSVLogger

    callback = ModelyardCallback()
    fit("lightning.pytorch", tmp_path, callback, enable_checkpointing=False, max_epochs=1,
        logger=CSVLogger(tmp_path / "logs", name="experiment"))
    task = callback.task
    assert task is not None and task.project == "experiment" and task.name == "ToyClassifier version_0"
    assert task.status == "completed" and Task.current_task() is None

    callback = ModelyardCallback(project="proj")
    fit("lightning.pytorch", tmp_path / "2", callback, enable_checkpointing=False, max_epochs=1)
    assert callback.task is not None
    assert (callback.task.project, callback.task.name) == ("proj", "ToyClassifier")


def test_a_failed_run_marks_its_task_failed_and_keeps_what_was_recorded(tmp_path: Path) -> None:
    module_class, data_class = toy_classes()

    class Exploding(module_class):  # type: ignore[misc,valid-type]
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            if self.global_step == 6:
                raise RuntimeError("boom")
            return super().training_step(batch, batch_idx)

    callback = ModelyardCallback()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_top_k=-1)
    trainer = make_trainer("lightning.pytorch", tmp_path, [callback, checkpoint], max_epochs=3)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(Exploding(), data_class())
    OutputModel.wait_for_uploads()
    assert callback.task is not None and callback.task.status == "failed"
    versions = Model(callback.model_ids[0]).versions
    assert [v.iteration for v in versions] == [2, 4, 6]
    assert all(v.state == "ready" for v in versions)


def test_a_remote_checkpoint_folder_is_refused_before_training(tmp_path: Path) -> None:
    checkpoint = ModelCheckpoint(dirpath="s3://bucket/ckpt")
    with pytest.raises(ValueError, match="local folder"):
        fit("lightning.pytorch", tmp_path, ModelyardCallback(), checkpoint, max_epochs=1)


def test_validate_and_test_record_nothing(tmp_path: Path) -> None:
    module_class, data_class = toy_classes()
    callback = ModelyardCallback()
    trainer = make_trainer("lightning.pytorch", tmp_path, [callback])
    trainer.validate(module_class(), data_class(), verbose=False)
    assert callback.model_ids == []
    assert Model.query_models() == []
