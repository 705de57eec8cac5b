"""Run under ``torchrun --nproc_per_node=2``: a tiny BERT Trainer run (gloo, CPU) with ModelyardCallback.

Every rank writes ``rank-<n>.json`` into the output folder: its rank, whether it is the world process zero,
and the model it recorded (``None`` off rank zero). The registry and destination come from the environment.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

import modelyard
from modelyard_transformers import ModelyardCallback


class TokenIds(torch.utils.data.Dataset):
    def __init__(self, n: int = 32) -> None:
        self.ids = torch.randint(0, 100, (n, 8), generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = self.ids[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor(int(ids[0] >= 50))}


def main(output_dir: str) -> None:
    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                        vocab_size=100, max_position_embeddings=32, id2label={0: "negative", 1: "positive"},
                        label2id={"negative": 0, "positive": 1})
    callback = ModelyardCallback(name="team-bert", mirror_retention=False)
    args = TrainingArguments(output_dir=output_dir, max_steps=6, save_steps=2, per_device_train_batch_size=4,
                             learning_rate=1e-3, report_to=[], disable_tqdm=True, use_cpu=True, logging_steps=2,
                             seed=0, dataloader_num_workers=0, ddp_backend="gloo")
    trainer = Trainer(model=BertForSequenceClassification(config), args=args, train_dataset=TokenIds(),
                      callbacks=[callback])
    trainer.train()
    model_id = callback.output_model.id if callback.output_model is not None else None
    if model_id is not None:
        modelyard.OutputModel.wait_for_uploads()
    rank = int(os.environ.get("RANK", "0"))
    report = {"rank": rank, "world": trainer.args.world_size, "zero": trainer.state.is_world_process_zero,
              "model_id": model_id}
    Path(output_dir, f"rank-{rank}.json").write_text(json.dumps(report))
    # Leave together and tear the gloo group down explicitly: a rank that exits while its peer still works
    # can abort in gloo's C++ threads ("terminate called without an active exception").
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
