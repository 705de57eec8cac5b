"""modelyard next to its peers on one checkpoint workload: caller stall per checkpoint and time to durable.

Run: ``tox -e peers`` (the full run: 5 checkpoints of 256 MiB, writes ``benchmarks/results/peers.json``), or
``tox -e peers -- --quick`` or ``.tox/peers/bin/python benchmarks/bench_peers.py --quick`` (2 checkpoints
of 4 MiB, well under a minute, results not written). ``--size-mib``, ``--count`` and ``--only`` change the workload.

Every system runs in a fresh subprocess with its own temp dir (registry, artifact store, run folders), so one
system's threads, patches and page cache leftovers do not bleed into the next, and a peer that crashes is
recorded as a result (status and the first line of its error), never skipped.

Custom loop (``loop:*``): a float32 tensor of ``--size-mib`` is ``torch.save``-d to a new file per checkpoint
(not timed: every system pays it), then handed to the system. One warm-up checkpoint of 1 MiB first opens the
registry / run (its call is reported as ``warmup_call_ms``, outside the medians). Per checkpoint:

* stall: the time the calling (training) thread is inside the system's call(s);
* to durable: from the call until the bytes are stored and recorded (see ``durable`` in each result); the
  loop waits for it before the next checkpoint, so checkpoints do not compete with each other.

Lightning (``lightning:*``): a LightningModule holding one ``--size-mib`` parameter (plain SGD, so a
checkpoint is about that size) trains ``--count + 1`` steps on the CPU and checkpoints after every step. The
per-checkpoint stall is the time between the end of one optimizer step and the start of the next training
step (every callback hook, Lightning's own save included); ``after_fit_s`` is what is still to wait for
after ``fit`` returns until everything is durable.

Network: nothing may leave 127.0.0.1. W&B and ClearML are forced offline, MLflow points at a local SQLite
file, telemetry is off, all by environment before any import; a guard on ``socket.connect`` refuses (and
records, as ``refused_connections``) any connection to another host.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import MIB, table, write_results  # noqa: E402

# What "durable" means for each system: when the call (or the wait after it) returns, the bytes are where.
DURABLE = {
    "loop:modelyard auto_delete_file=True": "OutputModel.wait_for_uploads() returned: the version is ready "
    "(bytes in the local storage folder, sha256 recorded in SQLite)",
    "loop:modelyard auto_delete_file=False": "OutputModel.wait_for_uploads() returned (as above)",
    "loop:mlflow log_artifact": "mlflow.log_artifact returned (synchronous copy into the local artifact root; "
    "the run is in SQLite)",
    "loop:wandb offline log_artifact": "wandb.finish() returned (offline: the artifact's files and manifest "
    "are complete in the local run folder, ready for `wandb sync`); per checkpoint only the call is timed",
    "loop:clearml offline update_weights": "OutputModel.update_weights returned (synchronous upload to the "
    "task's local output_uri); Task.close() then packs the offline session",
    "lightning:checkpoint only (baseline)": "Lightning's ModelCheckpoint wrote the .ckpt (nothing recorded)",
    "lightning:modelyard callback": "ModelCheckpoint + ModelyardCallback; durable when "
    "OutputModel.wait_for_uploads() returns after fit",
    "lightning:mlflow autolog checkpoint": "mlflow.pytorch.autolog(checkpoint=True, save_freq=1 step): the "
    "callback saves and log_artifact-s synchronously in the hook",
}
SYSTEMS = list(DURABLE)


# ---------------------------------------------------------------------------------------------- the child


def offline_environment(work: Path) -> dict[str, str]:
    """Everything that keeps the peers local, set before any of them is imported."""
    return {
        "HOME": str(work / "home"),  # ~/.clearml, ~/.config/wandb, ~/.mlflow land in the temp dir
        "MODELYARD_HOME": str(work / "modelyard"),
        "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(work / "wandb"),
        "WANDB_CONSOLE": "off", "WANDB_DISABLE_GIT": "true", "WANDB_DISABLE_CODE": "true",
        "WANDB_X_DISABLE_STATS": "true", "WANDB_X_DISABLE_META": "true", "WANDB_ANONYMOUS": "never",
        "WANDB_CACHE_DIR": str(work / "wandb-cache"), "WANDB_DATA_DIR": str(work / "wandb-data"),
        "WANDB_ARTIFACT_DIR": str(work / "wandb-artifacts"),
        "CLEARML_OFFLINE_MODE": "1", "CLEARML_CACHE_DIR": str(work / "clearml-cache"),
        "CLEARML_CONFIG_FILE": str(work / "clearml.conf"),
        # Should anything still try the server, it meets a closed local port, not the internet.
        "CLEARML_API_HOST": "http://127.0.0.1:9", "CLEARML_WEB_HOST": "http://127.0.0.1:9",
        "CLEARML_FILES_HOST": "http://127.0.0.1:9", "CLEARML_LOG_ENVIRONMENT": "",
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}", "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true", "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
        "HF_HUB_OFFLINE": "1", "NO_PROXY": "*",
    }


REFUSED: list[str] = []


def guard_network() -> None:
    """Refuse every connection that would leave this machine (and remember it for the results)."""
    original = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = str(address[0])
            if host not in ("127.0.0.1", "::1", "localhost"):
                REFUSED.append(f"{host}:{address[1]}")
                raise ConnectionRefusedError(f"bench_peers: no network beyond 127.0.0.1 ({host})")
        original(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign]


def summary(samples: list[float]) -> dict[str, Any]:
    ms = [round(s * 1000, 2) for s in samples]
    return {"median_ms": round(statistics.median(ms), 2) if ms else None, "max_ms": max(ms) if ms else None,
            "samples_ms": ms}


def custom_loop(system: str, work: Path, size: int, count: int) -> dict[str, Any]:
    """Checkpoints from a custom loop: ``torch.save`` then hand the file to ``system``."""
    import torch

    tensor = torch.zeros(size // 4, dtype=torch.float32)
    ckpts = work / "ckpt"
    ckpts.mkdir()
    call, durable, finish = open_system(system, work)
    result: dict[str, Any] = {}
    stalls, durables, saves = [], [], []
    for i in range(-1, count):  # -1: the warm-up checkpoint (1 MiB) that opens the registry / run
        path = ckpts / f"ckpt-{i + 1}.pt"
        t0 = time.perf_counter()
        if i < 0:
            torch.save({"w": torch.zeros(MIB // 4)}, path)
        else:
            tensor[0] = i  # a new checkpoint: new bytes
            torch.save({"w": tensor, "step": i}, path)
        saved = time.perf_counter()
        call(path, i + 1)
        returned = time.perf_counter()
        durable()
        done = time.perf_counter()
        if i < 0:
            result["warmup_call_ms"] = round((returned - saved) * 1000, 2)
            continue
        saves.append(saved - t0)
        stalls.append(returned - saved)
        durables.append(done - saved)
    t0 = time.perf_counter()
    finish()
    result["finish_s"] = round(time.perf_counter() - t0, 3)
    result["stall"] = summary(stalls)
    if system.startswith("loop:wandb"):
        # Offline, no single artifact is durable before the run is finished: all of them are, at finish.
        result["to_durable"] = {"median_ms": None, "max_ms": None, "samples_ms": []}
        result["last_checkpoint_to_durable_ms"] = round((stalls[-1] + result["finish_s"]) * 1000, 2)
    else:
        result["to_durable"] = summary(durables)
        result["last_checkpoint_to_durable_ms"] = result["to_durable"]["samples_ms"][-1]
    result["torch_save"] = summary(saves)
    return result


def open_system(system: str, work: Path) -> tuple[Callable[[Path, int], None], Callable[[], None],
                                                   Callable[[], None]]:
    """``(call, wait_until_durable, finish)`` for one system of the custom loop."""
    nothing: Callable[[], None] = lambda: None  # noqa: E731
    if system.startswith("loop:modelyard"):
        from modelyard import OutputModel, Task

        auto_delete = system.endswith("True")
        out = OutputModel(Task.init(project_name="bench", task_name="peers"))

        def call(path: Path, step: int) -> None:
            out.update_weights(str(path), iteration=step, auto_delete_file=auto_delete)

        def finish() -> None:
            OutputModel.wait_for_uploads()
            states = {v.state for v in out.versions}
            if states != {"ready"}:
                raise RuntimeError(f"modelyard versions not all ready: {states}")

        return call, OutputModel.wait_for_uploads, finish
    if system.startswith("loop:mlflow"):
        import mlflow

        experiment = mlflow.create_experiment("peers", artifact_location=(work / "mlartifacts").as_uri())
        run = mlflow.start_run(experiment_id=experiment)

        def call(path: Path, step: int) -> None:
            mlflow.log_artifact(str(path), artifact_path=f"checkpoints/step-{step}")

        def finish() -> None:
            mlflow.end_run()
            stored = list((work / "mlartifacts").rglob("*.pt"))
            if not stored:
                raise RuntimeError(f"mlflow stored no artifact for run {run.info.run_id}")

        return call, nothing, finish
    if system.startswith("loop:wandb"):
        import wandb

        run = wandb.init(project="bench", mode="offline", dir=str(work / "wandb"))

        def call(path: Path, step: int) -> None:
            artifact = wandb.Artifact("checkpoint", type="model", metadata={"step": step})
            artifact.add_file(str(path))
            run.log_artifact(artifact)

        return call, nothing, run.finish
    if system.startswith("loop:clearml"):
        from clearml import OutputModel as ClearMLOutputModel
        from clearml import Task as ClearMLTask

        ClearMLTask.set_offline(offline_mode=True)
        task = ClearMLTask.init(project_name="bench", task_name="peers", output_uri=str(work / "clearml-store"),
                                auto_connect_frameworks=False, auto_resource_monitoring=False,
                                auto_connect_streams=False, auto_connect_arg_parser=False)
        out = ClearMLOutputModel(task=task, framework="PyTorch")

        def call(path: Path, step: int) -> None:
            out.update_weights(weights_filename=str(path), iteration=step)

        return call, nothing, task.close
    raise ValueError(f"unknown system {system!r}")


def lightning_run(system: str, work: Path, size: int, count: int) -> dict[str, Any]:
    """``count`` measured checkpoints of a ``pytorch_lightning`` fit (the namespace MLflow's autolog uses)."""
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import ModelCheckpoint
    from torch.utils.data import DataLoader, TensorDataset

    marks: dict[str, list[float]] = {"step_end": [], "step_start": []}

    class Big(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(size // 4))

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            marks["step_start"].append(time.perf_counter())
            loss = (self.w[:16] - batch[0][0, :16]).pow(2).mean()
            self.log("train_loss", loss)
            return loss

        def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
            super().optimizer_step(*args, **kwargs)
            marks["step_end"].append(time.perf_counter())

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=1e-3)

    callbacks: list[Any] = []
    wait: Callable[[], None] = lambda: None  # noqa: E731
    if system != "lightning:mlflow autolog checkpoint":
        callbacks.append(ModelCheckpoint(dirpath=work / "ckpt", every_n_train_steps=1, save_top_k=-1))
    if system == "lightning:modelyard callback":
        from modelyard import OutputModel
        from modelyard_lightning.pytorch_lightning import ModelyardCallback

        callbacks.insert(0, ModelyardCallback())
        wait = OutputModel.wait_for_uploads
    run = None
    if system == "lightning:mlflow autolog checkpoint":
        import mlflow

        experiment = mlflow.create_experiment("peers", artifact_location=(work / "mlartifacts").as_uri())
        mlflow.pytorch.autolog(checkpoint=True, checkpoint_save_best_only=False, checkpoint_save_freq=1,
                               log_models=False, silent=True)
        run = mlflow.start_run(experiment_id=experiment)
    data = DataLoader(TensorDataset(torch.randn((count + 1) * 2, 16)), batch_size=2)
    trainer = pl.Trainer(max_steps=count + 1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=callbacks, accelerator="cpu", devices=1,
                         num_sanity_val_steps=0, limit_val_batches=0, enable_checkpointing=bool(callbacks))
    t0 = time.perf_counter()
    trainer.fit(Big(), data)
    fitted = time.perf_counter()
    wait()
    durable = time.perf_counter()
    if run is not None:
        import mlflow

        mlflow.end_run()
        stored = list((work / "mlartifacts").rglob("*.pth")) + list((work / "mlartifacts").rglob("*.ckpt"))
        if not stored:
            raise RuntimeError("mlflow autolog stored no checkpoint artifact")
    stalls = [start - end for end, start in zip(marks["step_end"], marks["step_start"][1:], strict=False)]
    return {"stall": summary(stalls[:count]), "fit_s": round(fitted - t0, 3),
            "after_fit_s": round(durable - fitted, 3), "steps": count + 1}


def child(system: str, work: Path, size: int, count: int, out: Path) -> int:
    guard_network()
    result: dict[str, Any] = {"system": system, "durable": DURABLE[system]}
    try:
        run = lightning_run if system.startswith("lightning:") else custom_loop
        result.update(run(system, work, size, count), status="ok")
    except BaseException as e:  # noqa: BLE001 - a peer's failure is a result
        lines = str(e).strip().splitlines()
        result.update(status="failed", error=f"{type(e).__name__}: {lines[0] if lines else ''}",
                      traceback=traceback.format_exc().splitlines()[-6:])
    result["refused_connections"] = sorted(set(REFUSED))
    out.write_text(json.dumps(result))
    return 0


# --------------------------------------------------------------------------------------------- the parent


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in ("modelyard", "modelyard-lightning", "torch", "pytorch-lightning", "mlflow", "mlflow-skinny",
                 "wandb", "clearml"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def run_system(system: str, size: int, count: int, timeout: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="modelyard-peers-", dir=os.environ.get("BENCH_DIR")))
    try:
        (work / "home").mkdir()
        (work / "clearml.conf").write_text("sdk { development { report_use_subprocess: false } }\n")
        env = {**os.environ, **offline_environment(work)}
        out = work / "result.json"
        cmd = [sys.executable, __file__, "--child", system, "--work", str(work), "--size-mib", str(size / MIB),
               "--count", str(count), "--out", str(out)]
        os.sync()  # every system starts with no dirty pages left by the previous one
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"system": system, "durable": DURABLE[system], "status": "failed",
                    "error": f"timed out after {timeout:.0f} s"}
        if out.exists():
            return json.loads(out.read_text())
        lines = [line for line in (proc.stderr or proc.stdout).strip().splitlines() if line.strip()]
        return {"system": system, "durable": DURABLE[system], "status": "failed",
                "error": f"child exited {proc.returncode}: {lines[-1] if lines else 'no output'}"}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cell(result: dict[str, Any], key: str, field: str) -> Any:
    value = result.get(key, {}).get(field) if isinstance(result.get(key), dict) else None
    return "-" if value is None else value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 MiB x 2 checkpoints, results not written")
    parser.add_argument("--size-mib", type=float, default=256.0, help="checkpoint size (default 256)")
    parser.add_argument("--count", type=int, default=5, help="checkpoints per system (default 5)")
    parser.add_argument("--only", action="append", choices=SYSTEMS, help="run only these systems")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per system before it fails")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = int((4.0 if args.quick else args.size_mib) * MIB) // 4 * 4
    count = 2 if args.quick else args.count
    if args.child:
        return child(args.child, Path(args.work), size, count, Path(args.out))
    results = []
    for system in args.only or SYSTEMS:
        print(f"-- {system}", flush=True)
        results.append(run_system(system, size, count, args.timeout))
    rows = [[r["system"], r["status"], cell(r, "stall", "median_ms"), cell(r, "stall", "max_ms"),
             cell(r, "to_durable", "median_ms"), cell(r, "to_durable", "max_ms"),
             r.get("last_checkpoint_to_durable_ms", "-"), r.get("warmup_call_ms", "-"),
             r.get("fit_s", "-"), r.get("after_fit_s", "-"), r.get("error", "")] for r in results]
    table(f"{count} checkpoints of {size / MIB:g} MiB: caller stall and time to durable (ms)",
          ["system", "status", "stall median", "stall max", "durable median", "durable max",
           "last -> all durable", "warm-up call", "fit s", "after fit s", "error"], rows)
    peers = versions()
    print("\n" + ", ".join(f"{k} {v}" for k, v in peers.items() if v))
    missing = [name for name in ("wandb", "clearml", "pytorch-lightning") if not peers[name]]
    missing += [] if peers["mlflow"] or peers["mlflow-skinny"] else ["mlflow"]
    if missing:
        # run_all.py (tox -e bench) runs every script in an env without the peers: keep the real results.
        print(f"\nnot writing results/peers.json: {', '.join(missing)} not installed here (use `tox -e peers`)")
    elif not args.quick:
        path = write_results("peers", {"size_mib": size / MIB, "checkpoints": count, "versions": peers,
                                       "results": results})
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
