"""Keras integration overhead (issue 5): the callback's capture vs Keras's own save, and per-batch cost.

Run: python benchmarks/bench_keras_overhead.py [--quick]
Writes benchmarks/results/keras_overhead.json (not with --quick). KERAS_BACKEND defaults to torch.

(a) capture time in the training thread: Keras's `model.save_weights` (its own HDF5 weights file) vs what
    ModelyardCallback does on a saving epoch with `save_weights_only=True` (variables -> safetensors, fsync,
    registry version, hand-over to the upload engine). Target: at most 10% added. Also the full capture
    (safetensors + `.keras` archive) vs Keras's `model.save(".keras")`, for reference.
(b) per-batch overhead on batches that do not save: the batch hook alone (save_freq=N), and real fits timed
    from epoch begin to epoch end (the epoch-end capture excluded) with no callback, with the callback in
    epoch mode, and with save_freq=N that never fires.
Uploads run in the background and are waited for between repetitions, outside the timed region. The runs
are interleaved and medians reported; on the torch backend torch runs one intra-op thread (`--threads`),
because on a small shared machine its spinning worker threads turn other processes' load into noise far
larger than anything measured here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _common import table, write_results  # noqa: E402

from modelyard import OutputModel, Task  # noqa: E402
from modelyard.testing import isolated_state  # noqa: E402
from modelyard_keras import ModelyardCallback  # noqa: E402
from modelyard_keras._weights import save_weights as write_safetensors  # noqa: E402

# name -> (input width, hidden width): Input(w) -> Dense(h) -> Dense(h) -> Dense(10)
MODELS = {"tiny": (8, 32), "small": (64, 256), "medium": (1024, 2048), "large": (2048, 4096)}


def mlp(width: int, hidden: int) -> keras.Model:
    model = keras.Sequential([keras.Input((width,)), keras.layers.Dense(hidden, activation="relu"),
                              keras.layers.Dense(hidden, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")], name=f"mlp{hidden}")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(32, width)).astype("float32")
    model.fit(x, np.zeros(32, "int64"), epochs=1, batch_size=32, verbose=0)  # builds the optimizer too
    return model


def timed(fn: Any, reps: int, between: Any = None) -> list[float]:
    out = []
    for _ in range(reps):
        if between is not None:
            between()
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def summary(samples: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(samples) * 1e3, "min_ms": min(samples) * 1e3,
            "samples": len(samples)}


def bench_capture(work: Path, names: list[str], reps: int) -> list[dict]:
    rows = []
    for name in names:
        width, hidden = MODELS[name]
        keras.backend.clear_session()
        model = mlp(width, hidden)
        params = int(sum(np.prod(v.shape) for v in model.weights))
        with isolated_state(work / f"home-{name}"):
            Task.init(project_name="bench", task_name=f"capture-{name}")
            callbacks = {}
            for weights_only in (True, False):
                cb = ModelyardCallback(save_weights_only=weights_only, monitor=None)
                cb.set_model(model)
                cb.set_params({"epochs": 1, "steps": 1, "verbose": 0})
                cb.on_train_begin()
                callbacks[weights_only] = cb
            folder = Path(tempfile.mkdtemp(dir=work))
            epochs = iter(range(10**6))
            candidates = {
                "save_weights": partial(model.save_weights, folder / "w.weights.h5"),
                "safetensors_write": partial(write_safetensors, model, folder / "w.safetensors"),
                "capture": lambda cb=callbacks[True], n=epochs: cb.on_epoch_end(next(n), {}),
                "save": partial(model.save, folder / "m.keras"),
                "capture_full": lambda cb=callbacks[False], n=epochs: cb.on_epoch_end(next(n), {}),
            }
            def fresh_start(folder: Path = folder) -> None:
                # Every write lands on a new file name, as the callback's do: overwriting the previous
                # file would charge freeing its blocks to the timed call.
                OutputModel.wait_for_uploads()
                for old in folder.iterdir():
                    old.unlink()

            # Interleave the measurements rep by rep, so machine noise hits them alike.
            samples: dict[str, list[float]] = {key: [] for key in candidates}
            for _ in range(reps + 1):  # the first round warms caches up and is dropped
                for key, fn in candidates.items():
                    samples[key] += timed(fn, 1, between=fresh_start)
            OutputModel.wait_for_uploads()
            for cb in callbacks.values():
                cb.on_train_end()
        s = {k: summary(v[1:]) for k, v in samples.items()}
        added = s["capture"]["median_ms"] / s["save_weights"]["median_ms"] - 1
        added_min = s["capture"]["min_ms"] / s["save_weights"]["min_ms"] - 1
        # Each round times both back to back: the per-round ratio cancels most of the machine's load swings.
        added_paired = statistics.median(c / w - 1 for c, w in zip(samples["capture"][1:],
                                                                   samples["save_weights"][1:], strict=True))
        added_full = s["capture_full"]["median_ms"] / s["save"]["median_ms"] - 1
        rows.append({"model": name, "params": params, "weights_mib": params * 4 / 2**20,
                     "keras_save_weights": s["save_weights"], "callback_capture_weights_only": s["capture"],
                     "added_vs_save_weights": added, "added_vs_save_weights_by_min": added_min,
                     "added_vs_save_weights_paired_median": added_paired,
                     "of_which_safetensors_write": s["safetensors_write"],
                     "keras_save_keras_archive": s["save"], "callback_capture_full": s["capture_full"],
                     "added_full_vs_save": added_full})
    return rows


class EpochTimer(keras.callbacks.Callback):
    """Times each epoch's batches: epoch begin to epoch end, before the callbacks listed after it run."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []
        self.batches = 0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._start = time.perf_counter()
        self._cpu = time.process_time()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)
        self.cpu_seconds.append(time.process_time() - self._cpu)
        self.batches = int(self.params["steps"])


def bench_batches(work: Path, epochs: int, rounds: int) -> dict:
    keras.backend.clear_session()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4096, 32)).astype("float32")
    y = rng.integers(0, 10, size=4096)
    model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")], name="batches")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)  # warm-up
    per_batch: dict[str, list[float]] = {"no callback": [], "epoch mode": [], "save_freq=N, not firing": []}
    cpu_per_batch: dict[str, list[float]] = {k: [] for k in per_batch}
    with isolated_state(work / "home-batches"):
        Task.init(project_name="bench", task_name="batches")
        for _ in range(rounds):
            for key in per_batch:
                timer = EpochTimer()
                extra = {"no callback": [],
                         "epoch mode": [ModelyardCallback(save_weights_only=True, monitor=None)],
                         "save_freq=N, not firing": [ModelyardCallback(save_freq=10**9, monitor=None,
                                                                       save_weights_only=True)]}[key]
                model.fit(x, y, epochs=epochs, batch_size=16, verbose=0, callbacks=[timer, *extra])
                per_batch[key] += [s / timer.batches for s in timer.seconds[1:]]  # first epoch: warm-up
                cpu_per_batch[key] += [s / timer.batches for s in timer.cpu_seconds[1:]]
        OutputModel.wait_for_uploads()

    # The batch hook alone, on batches that do not save.
    cb = ModelyardCallback(save_freq=10**9, monitor=None)
    cb.set_model(model)
    logs = {"loss": 0.5}
    calls = 200_000
    start = time.perf_counter()
    for i in range(calls):
        cb.on_train_batch_end(i % 256, logs)
    hook_ns = (time.perf_counter() - start) / calls * 1e9

    base = statistics.median(per_batch["no callback"])
    cpu_base = statistics.median(cpu_per_batch["no callback"])
    fits = {k: {"median_us": statistics.median(v) * 1e6, "min_us": min(v) * 1e6, "samples": len(v),
                "added_vs_no_callback": statistics.median(v) / base - 1,
                "cpu_median_us": statistics.median(cpu_per_batch[k]) * 1e6,
                "cpu_added_vs_no_callback": statistics.median(cpu_per_batch[k]) / cpu_base - 1}
            for k, v in per_batch.items()}
    return {"batch_hook_ns": hook_ns, "fit_per_batch": fits, "batches_per_epoch": 4096 // 16}


def _ms(stats: dict[str, float]) -> str:
    return f"{stats['median_ms']:.1f} ({stats['min_ms']:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repetitions, no results file")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (torch backend)")
    args = parser.parse_args()
    if keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(args.threads)
    names = ["tiny", "medium"] if args.quick else list(MODELS)
    load_before = os.getloadavg()
    reps = 3 if args.quick else 25
    with tempfile.TemporaryDirectory(prefix="bench-keras-") as tmp:
        work = Path(tmp)
        capture = bench_capture(work, names, reps)
        batches = bench_batches(work, epochs=3 if args.quick else 3, rounds=2 if args.quick else 12)

    load_after = os.getloadavg()
    print(f"load (1 min) before/after: {load_before[0]:.1f}/{load_after[0]:.1f}, CPUs: {os.cpu_count()}")
    backend = keras.backend.backend()
    table(f"(a) capture in the training thread, {backend} backend; ms, median (min) of {reps}",
          ["model", "params", "MiB", "save_weights", "capture", "added", "by min", "paired",
           "safetensors part", "save .keras", "capture+.keras", "added"],
          [[r["model"], f"{r['params']:,}", f"{r['weights_mib']:.2f}",
            _ms(r["keras_save_weights"]), _ms(r["callback_capture_weights_only"]),
            f"{r['added_vs_save_weights']:+.0%}", f"{r['added_vs_save_weights_by_min']:+.0%}",
            f"{r['added_vs_save_weights_paired_median']:+.0%}",
            _ms(r["of_which_safetensors_write"]), _ms(r["keras_save_keras_archive"]),
            _ms(r["callback_capture_full"]), f"{r['added_full_vs_save']:+.0%}"] for r in capture])
    table("(b) per-batch time of fit on batches that do not save (median; µs of wall and of process CPU)",
          ["configuration", "wall", "added", "CPU", "added"],
          [[k, f"{v['median_us']:.0f}", f"{v['added_vs_no_callback']:+.1%}", f"{v['cpu_median_us']:.0f}",
            f"{v['cpu_added_vs_no_callback']:+.1%}"] for k, v in batches["fit_per_batch"].items()]
          + [["batch hook alone (save_freq=N)", f"{batches['batch_hook_ns'] / 1e3:.2f}", "", "", ""]])
    if not args.quick:
        path = write_results("keras_overhead", {"backend": keras.backend.backend(),
                                                "keras": keras.__version__, "repetitions": reps,
                                                "torch_threads": args.threads,
                                                "load_average_before_after": [load_before[0], load_after[0]],
                                                "capture": capture, "batches": batches})
        print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
