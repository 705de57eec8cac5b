"""How much ModelyardCallback adds to the time a Hugging Face Trainer spends in a checkpoint save.

A ~100 MB BERT sequence classifier (hidden 512, 6 layers, built from a config: nothing is downloaded) trains
on synthetic token ids on CPU and saves a full checkpoint (weights + AdamW state + RNG/scheduler/trainer
state) every few steps, once without and once with ``ModelyardCallback``; runs alternate to spread drift.

A *save step* is what the training loop waits for when it saves: ``Trainer._save_checkpoint`` plus the
``on_save`` callbacks. With the callback, its foreground work (hardlink snapshot, registry rows, retention)
is timed separately, and the Trainer's own save is timed while earlier checkpoints upload in the background,
so any slowdown the uploads cause to the save is counted as overhead too.

    python benchmarks/bench_transformers_overhead.py [--saves 8] [--repeats 4]

Prints a table and writes ``benchmarks/results/transformers_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import transformers
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

import modelyard
from modelyard.testing import isolated_state
from modelyard_transformers import ModelyardCallback

RESULTS = Path(__file__).with_name("results") / "transformers_overhead.json"
VOCAB, SEQ = 14_000, 32
TARGET = 0.10


class TimedTrainer(Trainer):
    """A Trainer that times its own checkpoint saves."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.save_seconds: list[float] = []

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        start = time.perf_counter()
        super()._save_checkpoint(model, trial)
        self.save_seconds.append(time.perf_counter() - start)


class TimedModelyardCallback(ModelyardCallback):
    """ModelyardCallback with its ``on_save`` (everything it does in the training loop's thread) timed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.on_save_seconds: list[float] = []

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        super().on_save(args, state, control, **kwargs)
        self.on_save_seconds.append(time.perf_counter() - start)


class Tokens(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.ids = torch.randint(0, VOCAB, (n, SEQ), generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": torch.tensor(i % 2)}


def build_model() -> BertForSequenceClassification:
    config = BertConfig(vocab_size=VOCAB, hidden_size=512, num_hidden_layers=6, num_attention_heads=8,
                        intermediate_size=2048, max_position_embeddings=64, id2label={0: "no", 1: "yes"},
                        label2id={"no": 0, "yes": 1})
    torch.manual_seed(0)
    return BertForSequenceClassification(config)


def one_run(workdir: Path, with_callback: bool, saves: int, save_steps: int) -> dict[str, Any]:
    output_dir = workdir / ("with" if with_callback else "without")
    shutil.rmtree(output_dir, ignore_errors=True)
    callbacks: list[TrainerCallback] = []
    callback = TimedModelyardCallback() if with_callback else None
    if callback is not None:
        callbacks.append(callback)
    args = TrainingArguments(
        output_dir=str(output_dir), max_steps=saves * save_steps, save_steps=save_steps,
        per_device_train_batch_size=2, learning_rate=1e-4, report_to=[], disable_tqdm=True, use_cpu=True,
        logging_strategy="no", seed=0)
    trainer = TimedTrainer(model=build_model(), args=args, train_dataset=Tokens(64), callbacks=callbacks)
    start = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - start
    drain_seconds = 0.0
    if callback is not None:
        start = time.perf_counter()
        modelyard.OutputModel.wait_for_uploads()
        drain_seconds = time.perf_counter() - start
    checkpoint = output_dir / f"checkpoint-{save_steps}"
    size = sum(p.stat().st_size for p in checkpoint.rglob("*") if p.is_file())
    out = {"save_seconds": trainer.save_seconds, "train_seconds": train_seconds, "checkpoint_bytes": size,
           "on_save_seconds": callback.on_save_seconds if callback is not None else [],
           "drain_after_train_seconds": drain_seconds}
    shutil.rmtree(output_dir, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=8, help="checkpoints per run")
    parser.add_argument("--save-steps", type=int, default=3, help="training steps between checkpoints")
    parser.add_argument("--repeats", type=int, default=4, help="runs of each kind, alternating")
    parser.add_argument("--output", type=Path, default=RESULTS)
    opts = parser.parse_args()
    torch.set_num_threads(max(1, (os.cpu_count() or 1)))

    params = sum(p.numel() for p in build_model().parameters())
    base = Path(tempfile.mkdtemp(prefix="modelyard-bench-"))
    without: list[dict[str, Any]] = []
    with_cb: list[dict[str, Any]] = []
    try:
        # storage, staging and the checkpoints share one filesystem, as on a training machine's local disk
        with isolated_state(base / "home"):
            for _ in range(opts.repeats):
                without.append(one_run(base, False, opts.saves, opts.save_steps))
                with_cb.append(one_run(base, True, opts.saves, opts.save_steps))
    finally:
        shutil.rmtree(base, ignore_errors=True)

    def flat(runs: list[dict[str, Any]], key: str) -> list[float]:
        return [x for r in runs for x in r[key]]

    base_saves = flat(without, "save_seconds")
    cb_saves = flat(with_cb, "save_seconds")
    cb_on_save = flat(with_cb, "on_save_seconds")
    cb_steps = [s + c for s, c in zip(cb_saves, cb_on_save, strict=True)]
    summary = {
        "baseline_save_step_median_s": statistics.median(base_saves),
        "baseline_save_step_mean_s": statistics.fmean(base_saves),
        "with_callback_trainer_save_median_s": statistics.median(cb_saves),
        "with_callback_on_save_median_s": statistics.median(cb_on_save),
        "with_callback_on_save_max_s": max(cb_on_save),
        "with_callback_save_step_median_s": statistics.median(cb_steps),
        "with_callback_save_step_mean_s": statistics.fmean(cb_steps),
    }
    summary["overhead_median"] = (summary["with_callback_save_step_median_s"]
                                  / summary["baseline_save_step_median_s"] - 1)
    summary["overhead_mean"] = (summary["with_callback_save_step_mean_s"]
                                / summary["baseline_save_step_mean_s"] - 1)
    summary["overhead_min"] = min(cb_steps) / min(base_saves) - 1
    summary["callback_foreground_share_of_trainer_save"] = (
        statistics.median(cb_on_save) / statistics.median(cb_saves))
    summary["target"] = TARGET
    summary["meets_target"] = summary["overhead_median"] <= TARGET
    result = {
        "benchmark": "transformers_overhead",
        "model": {"architecture": "BertForSequenceClassification", "hidden_size": 512, "layers": 6,
                  "vocab_size": VOCAB, "parameters": params, "weights_mb": round(params * 4 / 1e6, 1)},
        "checkpoint_mb": round(with_cb[0]["checkpoint_bytes"] / 1e6, 1),
        "saves_per_run": opts.saves, "save_steps": opts.save_steps, "repeats": opts.repeats,
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "transformers": transformers.__version__, "modelyard": modelyard.__version__,
                        "cpus": os.cpu_count(), "machine": platform.machine(),
                        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]},
        "summary": summary,
        "runs": {"without_callback": without, "with_callback": with_cb},
    }
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(json.dumps(result, indent=2) + "\n")

    print(f"model: {params / 1e6:.1f} M parameters ({params * 4 / 1e6:.0f} MB weights), checkpoint "
          f"{result['checkpoint_mb']} MB, {opts.saves} saves x {opts.repeats} runs each")
    rows = [
        ("Trainer save step, no callback (median)", summary["baseline_save_step_median_s"]),
        ("Trainer._save_checkpoint with callback (median)", summary["with_callback_trainer_save_median_s"]),
        ("ModelyardCallback.on_save (median)", summary["with_callback_on_save_median_s"]),
        ("ModelyardCallback.on_save (max)", summary["with_callback_on_save_max_s"]),
        ("save step with callback (median)", summary["with_callback_save_step_median_s"]),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'':{width}}  seconds")
    for name, value in rows:
        print(f"{name:{width}}  {value:8.4f}")
    print(f"{'added to a save step (median)':{width}}  {summary['overhead_median']:+8.1%}   "
          f"(target <= {TARGET:.0%}: {'met' if summary['meets_target'] else 'NOT met'})")
    print(f"{'added to a save step (mean)':{width}}  {summary['overhead_mean']:+8.1%}")
    print(f"{'added to a save step (fastest vs fastest)':{width}}  {summary['overhead_min']:+8.1%}")
    print(f"{'on_save / Trainer._save_checkpoint (medians)':{width}}  "
          f"{summary['callback_foreground_share_of_trainer_save']:8.1%}")
    print(f"{'uploads still running when train() returned':{width}}  "
          f"{statistics.median(r['drain_after_train_seconds'] for r in with_cb):8.4f} s (median wait)")
    print(f"wrote {opts.output}")


if __name__ == "__main__":
    main()
