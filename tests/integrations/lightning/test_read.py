"""The read side treats what it downloads as untrusted: verified bytes, no unpickling for weights."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

import modelyard_lightning
from modelyard import IntegrityError, Model, OutputModel, Task, UnsafeFormatError, save_safetensors
from modelyard_lightning import ModelyardCallback

from ._toy import make_trainer, stored_version_folders, toy_classes


class _Canary:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))  # unpickling it creates the canary file


def _package(tmp_path: Path, files: dict[str, bytes]) -> str:
    folder = tmp_path / "package"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    out = OutputModel(Task.init(project_name="p", task_name="t"))
    out.update_weights_package(weights_path=str(folder), auto_delete_file=False)
    OutputModel.wait_for_uploads()
    return out.id


def test_a_pickle_posing_as_weights_is_refused_and_never_run(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    model_id = _package(tmp_path, {"model.safetensors": pickle.dumps(_Canary(str(canary)))})
    module_class, _ = toy_classes()
    with pytest.raises(UnsafeFormatError):
        modelyard_lightning.load_weights(module_class(), model_id)
    assert not canary.exists()


def test_weights_with_wrong_names_fail_strict_loading(tmp_path: Path) -> None:
    import numpy as np

    save_safetensors({"other.weight": np.zeros((2, 2), np.float32)}, tmp_path / "model.safetensors")
    model_id = _package(tmp_path, {"model.safetensors": (tmp_path / "model.safetensors").read_bytes()})
    module_class, _ = toy_classes()
    with pytest.raises(RuntimeError, match="Missing key"):
        modelyard_lightning.load_weights(module_class(), model_id)
    result = modelyard_lightning.load_weights(module_class(), model_id, strict=False)
    assert "other.weight" in result.unexpected_keys


def test_a_tampered_checkpoint_is_not_returned(tmp_path: Path, fresh_modelyard: Path) -> None:
    module_class, data_class = toy_classes()
    callback = ModelyardCallback()
    trainer = make_trainer("lightning.pytorch", tmp_path, [callback], enable_checkpointing=False, max_steps=2)
    trainer.fit(module_class(), data_class())
    model_id = callback.model_ids[0]
    (folder,) = stored_version_folders(fresh_modelyard, model_id)
    (stored,) = folder.rglob("final*.ckpt*")
    data = bytearray(stored.read_bytes())
    data[-100] ^= 0xFF
    stored.write_bytes(bytes(data))
    with pytest.raises((IntegrityError, ValueError), match="sha256|integrity|mismatch"):
        modelyard_lightning.checkpoint_path(model_id)


def test_a_model_without_ready_versions_says_so() -> None:
    out = OutputModel(Task.init(project_name="p", task_name="t"))
    with pytest.raises(LookupError, match="no ready weights version"):
        modelyard_lightning.checkpoint_path(out.id)
    with pytest.raises(LookupError, match="tagged 'best'"):
        modelyard_lightning.load_weights(torch.nn.Linear(1, 1), out.id, version="best")


def test_bfloat16_and_tied_weights_round_trip(tmp_path: Path) -> None:
    import lightning.pytorch as L

    class Tied(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(10, 4)
            self.head = torch.nn.Linear(4, 10, bias=False)
            self.head.weight = self.embed.weight  # tied: one storage, two names
            self.register_buffer("scale", torch.tensor([0.5, 2.0], dtype=torch.bfloat16))

        def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
            return self.head(self.embed(batch[0])).float().pow(2).mean() * self.scale.float().sum()

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    tokens = torch.utils.data.TensorDataset(torch.randint(0, 10, (8, 3)))
    data = torch.utils.data.DataLoader(tokens, batch_size=4)
    callback = ModelyardCallback()
    trained = Tied()
    make_trainer("lightning.pytorch", tmp_path, [callback], enable_checkpointing=False, max_steps=2).fit(
        trained, data)
    fresh = Tied()
    modelyard_lightning.load_weights(fresh, callback.model_ids[0])
    assert fresh.scale.dtype == torch.bfloat16 and torch.equal(fresh.scale, trained.scale)
    assert torch.equal(fresh.embed.weight, trained.embed.weight)
    assert fresh.head.weight is fresh.embed.weight  # load_state_dict keeps the tie
    assert Model(callback.model_ids[0]).versions[0].state == "ready"
