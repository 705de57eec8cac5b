"""How much time ModelyardCallback adds to Lightning's own checkpoint saving (target: at most 10%).

A module of about 100 MB of float32 parameters (Adam, so each ``.ckpt`` is about 315 MB) trains on the CPU
with a ModelCheckpoint saving every few steps (top-2 rotation, so files are also deleted). Each run is done
without and with ModelyardCallback, alternating, several times. Per save, we measure:

* ``lightning_save``: the time in ``ModelCheckpoint.on_train_batch_end`` (dump, ``torch.save``, write,
  rotate). With the callback this includes its ``on_save_checkpoint`` (one memory copy of the weights).
* ``callback_hooks``: the callback's other hooks on the step after a save (find the new file, hard-link it,
  hand it to the background thread).
* ``idle_hook``: the callback's hook time on a step with nothing to record.

``added = lightning_save(with) + callback_hooks - lightning_save(without)``; overhead = added / lightning_save
(without). It includes any slowdown that the background work (writing ``model.safetensors``, the upload of
both files by the upload engine) causes to Lightning's own save.

Two regimes:

* ``spaced``: each training step takes ``--step-seconds`` (a sleep standing for accelerator compute, which
  leaves the CPU and the disk to the background work, as on a GPU machine) and saves come every few steps: the
  previous version's upload is over before the next save. This is the regime the 10% target is about.
* ``spaced, storage off disk``: the same, with modelyard's storage on another device (a tmpfs), as with an
  object store or a network share: the upload reads the training disk but does not write to it.
* ``back-to-back``: no compute and a save after every step, so each save competes with the upload of the
  previous one for the same two CPUs and the same disk (modelyard's default storage is a folder on that
  disk, so every save writes its bytes a second time). A stress test, reported for what it shows.

Run: ``python benchmarks/bench_lightning_overhead.py`` (prints a table, writes
``benchmarks/results/lightning_overhead.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

import modelyard
from modelyard import Model, OutputModel
from modelyard.testing import reset_state
from modelyard_lightning import ModelyardCallback

RESULTS = Path(__file__).parent / "results" / "lightning_overhead.json"


class Big(L.LightningModule):
    """``depth`` square linear layers: about ``4 * depth * width**2`` bytes of float32 parameters."""

    def __init__(self, width: int, depth: int, step_seconds: float) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.step_seconds = step_seconds
        self.layers = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(depth)])

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.step_seconds:
            time.sleep(self.step_seconds)  # accelerator compute: the host CPU and disk stay free
        (x,) = batch
        return self.layers(x).pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-6)


class TimedCheckpoint(ModelCheckpoint):
    """ModelCheckpoint, timing its public save hook on every step."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.times: list[float] = []
        self.in_flight: list[int] = []
        self.model_ids: Any = None  # with the callback: how to find its models

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.model_ids is not None:
            # Diagnostic, outside the timing: versions of earlier saves still uploading as this step ends.
            self.in_flight.append(sum(v.state not in ("ready", "failed")
                                      for i in self.model_ids() for v in Model(i).versions))
        start = time.perf_counter()
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self.times.append(time.perf_counter() - start)


def _timed(name: str) -> Any:
    def hook(self: TimedModelyard, *args: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        getattr(super(TimedModelyard, self), name)(*args, **kwargs)
        self.times.setdefault(name, []).append(time.perf_counter() - start)

    hook.__name__ = name
    return hook


class TimedModelyard(ModelyardCallback):
    """ModelyardCallback, timing each hook that runs during training."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.times: dict[str, list[float]] = {}

    on_train_batch_start = _timed("on_train_batch_start")
    on_save_checkpoint = _timed("on_save_checkpoint")


def run(tmp: Path, *, with_callback: bool, steps: int, every: int, width: int, depth: int,
        step_seconds: float, storage: Path | None) -> dict[str, Any]:
    os.environ["MODELYARD_HOME"] = str(tmp / "home")
    if storage is not None:
        os.environ["MODELYARD_DEFAULT_OUTPUT_URI"] = str(storage)
    else:
        os.environ.pop("MODELYARD_DEFAULT_OUTPUT_URI", None)
    reset_state()
    torch.manual_seed(0)
    checkpoint = TimedCheckpoint(dirpath=tmp / "ckpt", every_n_train_steps=every, save_top_k=2,
                                 monitor="step", mode="max")
    callbacks: list[Any] = [checkpoint]
    mine = TimedModelyard() if with_callback else None
    if mine is not None:
        callbacks.insert(0, mine)
        checkpoint.model_ids = lambda: mine.model_ids
    data = DataLoader(TensorDataset(torch.randn(steps * 4, width)), batch_size=4)
    trainer = L.Trainer(max_steps=steps, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=callbacks, accelerator="cpu", devices=1, num_sanity_val_steps=0,
                        limit_val_batches=0)
    start = time.perf_counter()
    trainer.fit(Big(width, depth, step_seconds), data)
    fit_seconds = time.perf_counter() - start
    saving = [t for i, t in enumerate(checkpoint.times) if (i + 1) % every == 0]
    out: dict[str, Any] = {"fit_seconds": fit_seconds, "lightning_save": saving,
                           "ckpt_bytes": max(p.stat().st_size for p in (tmp / "ckpt").glob("*.ckpt"))}
    if mine is not None:
        starts = mine.times["on_train_batch_start"]
        # The batch-start hook right after a save records it; the others have nothing to do.
        out["callback_hooks"] = [t for i, t in enumerate(starts) if i > 0 and i % every == 0]
        out["idle_hooks"] = [t for i, t in enumerate(starts) if i > 0 and i % every != 0]
        out["on_save_checkpoint"] = mine.times["on_save_checkpoint"]
        versions = Model(mine.model_ids[0]).versions
        out["stored_versions"] = sorted(v.metadata["checkpoint_file"] for v in versions)
        out["local_files"] = sorted(p.name for p in (tmp / "ckpt").glob("*.ckpt"))
        out["all_ready"] = all(v.state == "ready" for v in versions)
        out["uploads_in_flight_at_save"] = [n for i, n in enumerate(checkpoint.in_flight)
                                            if (i + 1) % every == 0]
    OutputModel.wait_for_uploads()
    return out


def regime(root: Path, name: str, *, repeats: int, saves: int, every: int, step_seconds: float, width: int,
           depth: int, storage: Path | None = None) -> dict[str, Any]:
    results: dict[str, list[dict[str, Any]]] = {"without": [], "with": []}
    for repeat in range(repeats):
        for label in ("without", "with"):
            tmp = root / f"{name}-{label}-{repeat}"
            tmp.mkdir()
            os.sync()  # every run starts with no dirty pages left by the previous one
            time.sleep(1)
            where = storage / f"{name}-{label}-{repeat}" if storage is not None else None
            results[label].append(run(tmp, with_callback=label == "with", steps=saves * every + 1,
                                      every=every, width=width, depth=depth, step_seconds=step_seconds,
                                      storage=where))
            reset_state()
            shutil.rmtree(tmp, ignore_errors=True)
            if where is not None:
                shutil.rmtree(where, ignore_errors=True)

    def median(label: str, key: str) -> float:
        return statistics.median(t for r in results[label] for t in r.get(key, []))

    base = median("without", "lightning_save")
    with_save = median("with", "lightning_save")
    inside = median("with", "on_save_checkpoint")
    hooks = median("with", "callback_hooks")
    added = with_save + hooks - base
    # How much Lightning's own save time moves between identical runs without the callback (A/A): the
    # end-to-end difference means something only beyond this band (this machine's disk is shared and noisy).
    run_medians = {label: [round(statistics.median(r["lightning_save"]), 4) for r in results[label]]
                   for label in results}
    noise = (max(run_medians["without"]) - min(run_medians["without"])) / base
    return {
        "saves_per_run": saves, "save_every_steps": every, "step_seconds": step_seconds, "repeats": repeats,
        "storage": "another device (tmpfs)" if storage is not None else "MODELYARD_HOME/storage, same disk",
        "lightning_save_seconds_without": round(base, 4),
        "lightning_save_seconds_with": round(with_save, 4),
        "of_which_on_save_checkpoint_seconds": round(inside, 4),
        "callback_record_hook_seconds": round(hooks, 4),
        "callback_idle_hook_microseconds": (round(median("with", "idle_hooks") * 1e6, 1)
                                            if every > 1 else None),  # back-to-back: every step saves
        "callback_own_time_fraction": round((inside + hooks) / base, 4),
        "added_seconds_per_save": round(added, 4),
        "overhead_fraction": round(added / base, 4),
        "lightning_save_run_medians": run_medians,
        "noise_fraction": round(noise, 4),
        "storage_matches_trainer": all(r["stored_versions"] == r["local_files"] and r["all_ready"]
                                       for r in results["with"]),
        "raw": results,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--saves", type=int, default=4, help="saves per run")
    parser.add_argument("--width", type=int, default=2560)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--step-seconds", type=float, default=1.0, help="compute per step, spaced regime")
    parser.add_argument("--every", type=int, default=4, help="steps between saves, spaced regime")
    parser.add_argument("--off-disk", type=Path, default=Path("/dev/shm"),
                        help="a folder on another device for the 'spaced, storage off disk' regime")
    parser.add_argument("--only", action="append", help="run only this regime (repeatable)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # Lightning's advice about tiny dataloaders is not what we measure
    params = args.depth * (args.width * args.width + args.width)
    root = Path(tempfile.mkdtemp(prefix="modelyard-bench-"))
    off_disk = Path(tempfile.mkdtemp(prefix="modelyard-bench-", dir=args.off_disk))
    try:
        spaced_args = dict(repeats=args.repeats, saves=args.saves, every=args.every,
                           step_seconds=args.step_seconds, width=args.width, depth=args.depth)
        plans = {
            "spaced": lambda: regime(root, "spaced", **spaced_args),
            "spaced, storage off disk": lambda: regime(root, "offdisk", storage=off_disk,
                                                       **spaced_args),
            "back-to-back": lambda: regime(root, "b2b", repeats=args.repeats, saves=args.saves, every=1,
                                           step_seconds=0.0, width=args.width, depth=args.depth),
        }
        regimes = {name: plan() for name, plan in plans.items() if not args.only or name in args.only}
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(off_disk, ignore_errors=True)
    spaced = regimes.get("spaced") or next(iter(regimes.values()))
    own = max(r["callback_own_time_fraction"] for n, r in regimes.items() if n.startswith("spaced"))
    summary = {
        "parameters": params,
        "parameter_megabytes": round(params * 4 / 1e6, 1),
        "checkpoint_megabytes": round(spaced["raw"]["without"][0]["ckpt_bytes"] / 1e6, 1),
        "regimes_run": list(regimes),
        "optimizer": "adam",
        "target": "the callback adds at most 10% to the time Lightning spends saving a checkpoint",
        "target_fraction": 0.10,
        "callback_own_time_fraction": own,
        "meets_target": own <= 0.10,
        "end_to_end_overhead_fraction": spaced["overhead_fraction"],
        "end_to_end_noise_fraction": spaced["noise_fraction"],
        "regimes": regimes,
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "lightning": L.__version__, "modelyard": modelyard.__version__, "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    }
    rows = [("Lightning save without the callback (s)", "lightning_save_seconds_without", "{:.3f}"),
            ("Lightning save with the callback (s)", "lightning_save_seconds_with", "{:.3f}"),
            ("  of which the callback's on_save_checkpoint (s)", "of_which_on_save_checkpoint_seconds",
             "{:.3f}"),
            ("Callback hook recording the save (s)", "callback_record_hook_seconds", "{:.4f}"),
            ("Callback hook on a step without a save (us)", "callback_idle_hook_microseconds", "{:.1f}"),
            ("Callback's own time / Lightning save", "callback_own_time_fraction", "{:.1%}"),
            ("Added per save (s)", "added_seconds_per_save", "{:.3f}"),
            ("Overhead: added / Lightning save", "overhead_fraction", "{:.1%}"),
            ("  noise: spread of run medians without (A/A)", "noise_fraction", "{:.1%}"),
            ("Storage holds what the trainer keeps", "storage_matches_trainer", "{}")]
    label_width = max(len(r[0]) for r in rows)
    print(f"module: {params / 1e6:.1f} M parameters ({params * 4 / 1e6:.0f} MB), Adam, checkpoint "
          f"{summary['checkpoint_megabytes']} MB; {args.saves} saves x {args.repeats} runs each way; medians")
    names = list(regimes)
    print(f"{'':<{label_width}}  " + "  ".join(f"{n:>24}" for n in names))
    for label, key, fmt in rows:
        cells = [fmt.format(regimes[n][key]) if regimes[n][key] is not None else "-" for n in names]
        print(f"{label:<{label_width}}  " + "  ".join(f"{c:>24}" for c in cells))
    verdict = "met" if summary["meets_target"] else "NOT met"
    print(f"target (the callback's own time on the save path <= 10% of Lightning's save, spaced regimes): "
          f"{own:.1%}, {verdict}; end to end (incl. upload contention): {spaced['overhead_fraction']:+.1%} "
          f"with a run-to-run noise band of {spaced['noise_fraction']:.0%}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"written: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
