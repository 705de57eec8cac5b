"""Record a Hugging Face ``Trainer`` run in modelyard, rebuild the model from the registry, resume from it.

A tiny BERT sequence classifier is built from a config (nothing is downloaded) with ``id2label``, trained for
a few CPU steps on synthetic token ids. ``ModelyardCallback`` records every checkpoint, the model config, the
labels, the best checkpoint and the final model.

Run: python examples/transformers_trainer.py
Needs `modelyard-transformers` and `accelerate` (the Trainer on PyTorch needs it).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is built locally

import torch
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainingArguments,
)

import modelyard
from modelyard_transformers import ModelyardCallback, checkpoint_path, from_registry

VOCAB, SEQ = 200, 16
ID2LABEL = {0: "negative", 1: "positive"}


class SyntheticTokens(torch.utils.data.Dataset):
    """Random token ids; the label says whether token 7 appears in the sequence."""

    def __init__(self, n: int, seed: int) -> None:
        self.ids = torch.randint(0, VOCAB, (n, SEQ), generator=torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = self.ids[i]
        label = torch.tensor(int(7 in ids))
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": label}


def build_model() -> BertForSequenceClassification:
    config = BertConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=SEQ, id2label=ID2LABEL,
                        label2id={name: i for i, name in ID2LABEL.items()})
    torch.manual_seed(0)
    return BertForSequenceClassification(config)


def arguments(output_dir: Path, max_steps: int) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(output_dir), max_steps=max_steps, per_device_train_batch_size=8, learning_rate=1e-3,
        eval_strategy="steps", eval_steps=10, save_steps=10, save_total_limit=2, load_best_model_at_end=True,
        metric_for_best_model="loss", logging_steps=10, report_to=[], disable_tqdm=True, use_cpu=True)


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="transformers-trainer-"))
    task = modelyard.Task.init(project_name="examples", task_name="transformers-trainer")

    # 1. Train with one extra callback.
    callback = ModelyardCallback(tags=["example"])
    trainer = Trainer(model=build_model(), args=arguments(workdir / "run", 40),
                      train_dataset=SyntheticTokens(256, 0), eval_dataset=SyntheticTokens(64, 1),
                      callbacks=[callback])
    trainer.train()
    modelyard.OutputModel.wait_for_uploads()

    assert callback.output_model is not None
    model = modelyard.Model(callback.output_model.id)
    print(f"model {model.id} ({model.name!r}), labels {model.labels}")
    for v in model.versions:
        print(f"  version {v.version}: step {v.iteration}, {v.file_name}, tags {v.tags}, "
              f"{v.metadata.get('monitor')}={v.metadata.get('score')}")

    # 2. Rebuild the final model from the registry: equal logits.
    loaded = from_registry(AutoModelForSequenceClassification, model.id)
    batch = SyntheticTokens(4, 2)[0]["input_ids"].unsqueeze(0)
    trainer.model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=batch).logits, trainer.model(input_ids=batch).logits)
    print("reloaded from the registry: logits equal")

    # 3. Resume training from the newest recorded checkpoint, in a fresh output folder.
    resumed = Trainer(model=build_model(), args=arguments(workdir / "resumed", 60),
                      train_dataset=SyntheticTokens(256, 0), eval_dataset=SyntheticTokens(64, 1),
                      callbacks=[ModelyardCallback(tags=["example"])])
    resumed.train(resume_from_checkpoint=checkpoint_path(model.id))
    print(f"resumed to step {resumed.state.global_step}")
    task.close()


if __name__ == "__main__":
    main()
