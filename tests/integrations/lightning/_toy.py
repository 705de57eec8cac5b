"""Tiny real models, data and trainers for both Lightning namespaces; a run finishes in about a second."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from modelyard import Model

NAMESPACES = ("lightning.pytorch", "pytorch_lightning")


def lightning(namespace: str) -> Any:
    """The Lightning namespace module (``lightning.pytorch`` or ``pytorch_lightning``)."""
    return importlib.import_module(namespace)


def callback_class(namespace: str) -> type:
    """Our callback class for a namespace."""
    if namespace == "pytorch_lightning":
        from modelyard_lightning.pytorch_lightning import ModelyardCallback
    else:
        from modelyard_lightning import ModelyardCallback
    return ModelyardCallback  # type: ignore[no-any-return]


def checkpoint_class(namespace: str) -> type:
    return lightning(namespace).callbacks.ModelCheckpoint  # type: ignore[no-any-return]


_CLASSES: dict[str, tuple[type, type]] = {}


def toy_classes(namespace: str = "lightning.pytorch") -> tuple[type, type]:
    """``(ToyClassifier, ToyData)`` built on the namespace's LightningModule and LightningDataModule."""
    if namespace in _CLASSES:
        return _CLASSES[namespace]
    L = lightning(namespace)

    class ToyClassifier(L.LightningModule):  # type: ignore[name-defined,misc]
        """A linear classifier; every keyword argument becomes a hyperparameter."""

        def __init__(self, in_features: int = 4, num_classes: int = 3, lr: float = 0.5, **extra: Any) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(torch.nn.Linear(in_features, 8), torch.nn.ReLU(),
                                           torch.nn.Linear(8, num_classes))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self(x), y)
            self.log("train_loss", loss, on_step=True, on_epoch=False)
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            self.log("val_loss", torch.nn.functional.cross_entropy(self(x), y))

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    class ToyData(L.LightningDataModule):  # type: ignore[name-defined,misc]
        """Synthetic, learnable 3-class data; keyword arguments become hyperparameters or attributes."""

        def __init__(self, n: int = 32, batch_size: int = 8, in_features: int = 4, num_classes: int = 3,
                     attributes: dict[str, Any] | None = None, **extra: Any) -> None:
            super().__init__()
            self.save_hyperparameters(ignore=["attributes"])
            for name, value in (attributes or {}).items():
                setattr(self, name, value)
            generator = torch.Generator().manual_seed(0)
            centers = torch.randn(num_classes, in_features, generator=generator) * 3
            y = torch.randint(0, num_classes, (n,), generator=generator)
            self.x = centers[y] + torch.randn(n, in_features, generator=generator)
            self.y = y

        def train_dataloader(self) -> DataLoader:
            return DataLoader(TensorDataset(self.x, self.y), batch_size=self.hparams.batch_size)

        def val_dataloader(self) -> DataLoader:
            return DataLoader(TensorDataset(self.x, self.y), batch_size=self.hparams.batch_size)

    _CLASSES[namespace] = (ToyClassifier, ToyData)
    return _CLASSES[namespace]


def make_trainer(namespace: str, root: Path, callbacks: list[Any], **overrides: Any) -> Any:
    """A quiet CPU Trainer writing under ``root``."""
    settings: dict[str, Any] = dict(max_epochs=3, logger=False, enable_progress_bar=False,
                                    enable_model_summary=False, log_every_n_steps=1, accelerator="cpu",
                                    devices=1, num_sanity_val_steps=0, default_root_dir=str(root))
    settings.update(overrides)
    return lightning(namespace).Trainer(callbacks=callbacks, **settings)


def local_checkpoints(folder: Path) -> set[str]:
    """The .ckpt file names the trainer keeps in ``folder`` (symlinks excluded)."""
    return {p.name for p in folder.glob("*.ckpt") if p.is_file() and not p.is_symlink()}


def stored_version_folders(home: Path, model_id: str) -> list[Path]:
    """The versions whose objects modelyard's local storage holds for a model (``.../models/<id>/<n>/``).

    A folder counts when it holds at least one object (file): local storage may keep the empty folders of
    removed versions, which object stores do not have.
    """
    found = []
    for root, dirs, _files in os.walk(home / "storage"):
        here = Path(root)
        if here.name == model_id and here.parent.name == "models":
            found.extend(here / d for d in dirs if any(p.is_file() for p in (here / d).rglob("*")))
            dirs.clear()
    return sorted(found)


def versions_by_file(model: Model) -> dict[str, Any]:
    """The model's versions by the checkpoint file each mirrors."""
    return {v.metadata.get("checkpoint_file"): v for v in model.versions}
