"""Run as a script: a tiny Lightning DDP fit (2 CPU processes, gloo) with ModelyardCallback.

Every rank prints ``RESULT {json}``: its global rank, the models its callback recorded, and the global step.
The registry and destination come from the environment. Arguments: the checkpoint folder, the root dir.
"""

from __future__ import annotations

import json
import sys
import warnings

import lightning.pytorch as L
import torch
from torch.utils.data import DataLoader, TensorDataset

warnings.simplefilter("ignore")  # Lightning's advice on CPU DDP (num_workers, sync_dist) is not under test


class Classifier(L.LightningModule):
    def __init__(self, lr: float = 0.5) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):  # noqa: ANN001, ANN201
        x, y = batch
        return torch.nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):  # noqa: ANN201
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def main(ckpt_dir: str, root: str) -> None:
    # Imported here: isort ranks it third-party until integrations/lightning/src exists, first-party after.
    from modelyard_lightning import ModelyardCallback

    torch.manual_seed(0)
    data = TensorDataset(torch.randn(32, 4), torch.randint(0, 3, (32,)))
    callback = ModelyardCallback(name="team-lightning", mirror_retention=False,
                                 label_enumeration={"a": 0, "b": 1, "c": 2})
    checkpoint = L.callbacks.ModelCheckpoint(dirpath=ckpt_dir, save_top_k=-1)
    trainer = L.Trainer(max_epochs=3, strategy="ddp", accelerator="cpu", devices=2, default_root_dir=root,
                        callbacks=[callback, checkpoint], logger=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(Classifier(), DataLoader(data, batch_size=8))
    print("RESULT", json.dumps({"rank": trainer.global_rank, "models": callback.model_ids,
                                "step": trainer.global_step}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
