"""Train a tiny Lightning classifier and let ModelyardCallback record every checkpoint.

Run: python examples/lightning_train.py
Needs `modelyard-lightning` (and so `lightning` and `torch`); CPU only, a few seconds.

The one modelyard line is `ModelyardCallback(...)` in the Trainer's callbacks: every file ModelCheckpoint
writes becomes a version (weights as model.safetensors plus the .ckpt), with the hyperparameters, the class
names, the monitored metric and the step; storage keeps only what the trainer keeps. Then the script resumes
training from the registry and loads the best weights for inference, without unpickling anything.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

import modelyard_lightning
from modelyard import Model
from modelyard_lightning import ModelyardCallback

CLASS_NAMES = ["circle", "square", "triangle"]


class ShapeData(L.LightningDataModule):
    """Synthetic 8-feature points around one center per class."""

    def __init__(self, n: int = 512, batch_size: int = 64) -> None:
        super().__init__()
        self.save_hyperparameters()
        generator = torch.Generator().manual_seed(0)
        centers = torch.randn(len(CLASS_NAMES), 8, generator=generator) * 3
        self.y = torch.randint(0, len(CLASS_NAMES), (n,), generator=generator)
        self.x = centers[self.y] + torch.randn(n, 8, generator=generator)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=self.hparams.batch_size)


class ShapeClassifier(L.LightningModule):
    """A small MLP; `class_names` in the hyperparameters is where ModelyardCallback finds the labels."""

    def __init__(self, class_names: list[str], hidden: int = 32, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, len(class_names)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", torch.nn.functional.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(dim=1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def trainer(workdir: Path, epochs: int, callback: ModelyardCallback) -> L.Trainer:
    checkpoint = ModelCheckpoint(dirpath=workdir / "checkpoints", monitor="val_loss", save_top_k=2,
                                 save_last=True)
    return L.Trainer(max_epochs=epochs, callbacks=[callback, checkpoint], default_root_dir=workdir,
                     accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                     enable_model_summary=False, log_every_n_steps=4)


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="lightning-train-"))
    data = ShapeData()

    # 1. Train: every checkpoint lands in the registry.
    callback = ModelyardCallback(project="examples", name="shape-classifier", tags=["example"])
    trainer(workdir, 4, callback).fit(ShapeClassifier(CLASS_NAMES), data)
    (model_id,) = callback.model_ids
    model = Model(model_id)
    print(f"model {model.id} {model.name!r}: labels {model.labels}")
    print(f"config: {model.config_dict['module']['hparams']} / trainer {model.config_dict['trainer']}")
    for v in model.versions:
        print(f"  version {v.version}: step {v.iteration:>3}  {v.metadata['checkpoint_file']:<24} "
              f"{v.metadata['monitor']}={v.metadata['value']:.3g}  tags={v.tags}")

    # 2. Resume from the registry in one line (the newest checkpoint: the version tagged `last`), here into a
    #    new folder as on another machine (Lightning then says it does not reload the old top-k paths).
    resumed = ModelyardCallback(project="examples", name="shape-classifier-resumed")
    more = trainer(workdir / "resumed", 6, resumed)
    more.fit(ShapeClassifier(CLASS_NAMES), data, ckpt_path=modelyard_lightning.checkpoint_path(model_id))
    print(f"resumed to step {more.global_step}; new model {resumed.model_ids[0]}")

    # 3. Inference: the best weights, loaded from model.safetensors (no unpickling).
    fresh = ShapeClassifier(CLASS_NAMES)
    modelyard_lightning.load_weights(fresh, model_id)  # the version tagged `best`
    fresh.eval()
    with torch.no_grad():
        predicted = fresh(data.x).argmax(dim=1)
    accuracy = (predicted == data.y).float().mean().item()
    names = {i: name for name, i in model.labels.items()}
    print(f"best weights: accuracy {accuracy:.3f}; first prediction: {names[int(predicted[0])]}")


if __name__ == "__main__":
    main()
