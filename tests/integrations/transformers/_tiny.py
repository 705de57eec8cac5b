"""A tiny, randomly initialised BERT sequence classifier and a real, few-step CPU ``Trainer`` run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

VOCAB = 100
SEQ = 8
ID2LABEL = {0: "negative", 1: "positive"}


def tiny_model(id2label: dict[int, str] | None = ID2LABEL, seed: int = 0) -> BertForSequenceClassification:
    """Build a ~30k-parameter BERT classifier from a config (nothing is downloaded)."""
    labels: dict[str, Any] = {"num_labels": 2}
    if id2label is not None:
        labels = {"id2label": dict(id2label), "label2id": {v: k for k, v in id2label.items()}}
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                        vocab_size=VOCAB, max_position_embeddings=32, **labels)
    torch.manual_seed(seed)
    return BertForSequenceClassification(config)


class TokenIds(torch.utils.data.Dataset):  # type: ignore[misc]
    """Synthetic token ids; the label is whether the first token is in the upper half of the vocabulary."""

    def __init__(self, n: int = 32, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, VOCAB, (n, SEQ), generator=g)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = self.ids[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
                "labels": torch.tensor(int(ids[0] >= VOCAB // 2))}


def arguments(output_dir: Path, **overrides: Any) -> TrainingArguments:
    """TrainingArguments for a fast, quiet, offline CPU run."""
    options: dict[str, Any] = {
        "output_dir": str(output_dir), "max_steps": 6, "save_steps": 2, "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 8, "learning_rate": 1e-3, "report_to": [], "disable_tqdm": True,
        "use_cpu": True, "logging_steps": 2, "seed": 0, "dataloader_num_workers": 0,
    }
    options.update(overrides)
    return TrainingArguments(**options)


def run(output_dir: Path, callbacks: list[Any], model: Any = None, *, evaluate: bool = False,
        compute_metrics: Any = None, resume_from_checkpoint: str | None = None, **overrides: Any) -> Trainer:
    """Train the tiny model for a few steps with the given callbacks and return the Trainer."""
    trainer = make_trainer(output_dir, callbacks, model, evaluate=evaluate, compute_metrics=compute_metrics,
                           **overrides)
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    return trainer


def make_trainer(output_dir: Path, callbacks: list[Any], model: Any = None, *, evaluate: bool = False,
                 compute_metrics: Any = None, **overrides: Any) -> Trainer:
    """Build (without training) the Trainer that :func:`run` trains."""
    args = arguments(output_dir, **overrides)
    return Trainer(model=model if model is not None else tiny_model(), args=args, train_dataset=TokenIds(),
                   eval_dataset=TokenIds(16, seed=1) if evaluate else None, compute_metrics=compute_metrics,
                   callbacks=callbacks)
