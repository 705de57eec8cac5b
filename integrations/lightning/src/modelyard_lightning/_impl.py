"""The Lightning callback's behaviour, shared by the ``lightning.pytorch`` and ``pytorch_lightning`` classes.

Only public, duck-typed attributes of the trainer, module and ``ModelCheckpoint`` are used; every registry
rule is :class:`modelyard.TrainingRecorder`'s. Lightning has no "checkpoint file written/deleted" hook and
runs ``ModelCheckpoint`` last, so ``on_save_checkpoint`` captures the weights being saved into reusable
buffers (the training thread's only real cost), and the next hook (before the next optimizer step) compares
each ``ModelCheckpoint``'s ``best_k_models``, ``best_model_path``, ``last_model_path`` and the files'
identities with what it saw: a new file becomes a version, a file gone has its version dropped. Writing
``model.safetensors`` and the registry work run in order on the recorder's background worker.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import modelyard
from modelyard import BEST_TAG, FINAL_TAG, LAST_TAG, Task

from ._read import WEIGHTS_NAME

FRAMEWORK = "PyTorch Lightning"
#: The stream key of the final model (recorded when no ModelCheckpoint is configured).
FINAL = -1

Fingerprint = tuple[int, int, int]


def _fingerprint(path: str) -> Fingerprint | None:
    with contextlib.suppress(OSError):  # gone: no identity
        st = os.stat(path)
        return (st.st_ino, st.st_size, st.st_mtime_ns)
    return None


def _is_local(path: Any) -> bool:
    text = os.fspath(path) if isinstance(path, str | os.PathLike) else ""
    return bool(text) and ("://" not in text or text.startswith("file://"))


def _real(path: Any) -> str:
    text = os.fspath(path)
    return os.path.realpath(text[len("file://"):] if text.startswith("file://") else text)


def _model_checkpoints(trainer: Any) -> list[Any]:  # anything with ModelCheckpoint's public file state
    return [c for c in getattr(trainer, "checkpoint_callbacks", None) or []
            if all(hasattr(c, a) for a in ("best_k_models", "best_model_path", "last_model_path"))]


def _check_local(checkpoints: list[Any]) -> None:
    """Refuse ModelCheckpoint callbacks writing to remote folders (on every rank alike, before training)."""
    for checkpoint in checkpoints:
        dirpath = getattr(checkpoint, "dirpath", None)
        if dirpath is not None and not _is_local(dirpath):
            raise ValueError(f"ModelyardCallback records checkpoints written to a local folder; a ModelCheckpoint "
                             f"writes to {os.fspath(dirpath)!r}. Give it a local dirpath: modelyard uploads to "
                             "remote storage itself (pass upload_uri= to ModelyardCallback, or set "
                             "MODELYARD_DEFAULT_OUTPUT_URI).")


def _current_files(checkpoint: Any) -> list[str]:
    """The real paths of the local files a ModelCheckpoint currently points at, oldest first."""
    paths: list[str] = []
    for candidate in [*list(getattr(checkpoint, "best_k_models", None) or {}),
                      getattr(checkpoint, "best_model_path", ""), getattr(checkpoint, "last_model_path", "")]:
        if candidate and _is_local(candidate):
            real = _real(candidate)
            if real not in paths and os.path.isfile(real):
                paths.append(real)
    return sorted(paths, key=lambda p: (_fingerprint(p) or (0, 0, 0))[2])


_TRAINER_SETTINGS = ("max_epochs", "max_steps", "precision", "accumulate_grad_batches", "num_devices",
                     "num_nodes", "gradient_clip_val", "gradient_clip_algorithm", "check_val_every_n_epoch",
                     "val_check_interval")
_CHECKPOINT_SETTINGS = ("monitor", "mode", "save_top_k", "save_last", "save_weights_only", "dirpath",
                        "filename", "every_n_epochs")


def _described(obj: Any) -> dict[str, Any]:
    """A module or datamodule: its class and its saved hyperparameters (``save_hyperparameters``)."""
    hparams = getattr(obj, "hparams", None)
    return {"class": f"{type(obj).__module__}.{type(obj).__qualname__}",
            "hparams": modelyard.json_safe(dict(hparams)) if isinstance(hparams, Mapping) else {}}


def _version(distribution: str) -> str | None:
    return next((d.version for d in metadata.distributions(name=distribution)), None)


def run_config(trainer: Any, module: Any, namespace: str, checkpoint: Any | None) -> dict[str, Any]:
    """Build a model's ``config_dict``: module, datamodule, trainer, its ModelCheckpoint's settings, versions."""
    config: dict[str, Any] = {"module": _described(module)}
    datamodule = getattr(trainer, "datamodule", None)
    if datamodule is not None:
        config["datamodule"] = _described(datamodule)
    config["trainer"] = {n: modelyard.json_safe(getattr(trainer, n)) for n in _TRAINER_SETTINGS if hasattr(trainer, n)}
    for name in ("strategy", "accelerator"):
        if getattr(trainer, name, None) is not None:
            config["trainer"][name] = type(getattr(trainer, name)).__name__
    if checkpoint is not None:
        config["checkpoint"] = {n: modelyard.json_safe(getattr(checkpoint, n)) for n in _CHECKPOINT_SETTINGS
                                if hasattr(checkpoint, n)}
    config["versions"] = {"namespace": namespace, "lightning": _version(namespace.split(".")[0].replace(
        "_", "-")), "torch": _version("torch")}
    return config


def _sources(module: Any, datamodule: Any) -> list[tuple[str, Any]]:
    """The places labels are looked for: module hparams, datamodule hparams, then datamodule attributes."""
    found = [(f"{label}.hparams", getattr(obj, "hparams", None)) for label, obj in (("module", module),
                                                                                  ("datamodule", datamodule))]
    return [(label, h) for label, h in found if isinstance(h, Mapping)] + [("datamodule", datamodule)] * (
        datamodule is not None)


@dataclass
class _Mirror:  # one ModelCheckpoint: its model's name, the files recorded from it (path -> identity, version)

    checkpoint: Any
    index: int
    name: str
    seen: dict[str, tuple[Fingerprint, Future[modelyard.ModelVersion]]] = field(default_factory=dict)
    preexisting: dict[str, Fingerprint] = field(default_factory=dict)
    newest: Future[modelyard.ModelVersion] | None = None


def _capture(buffers: dict[str, Any], state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Copy a state dict's tensors into reusable CPU buffers (one per name, dtypes kept), overwritten next time."""
    import torch

    for name, value in state_dict.items():
        if isinstance(name, str) and isinstance(value, torch.Tensor) and not value.is_meta:
            buffer = buffers.get(name)
            if buffer is None or buffer.shape != value.shape or buffer.dtype != value.dtype:
                buffers[name] = buffer = torch.empty(value.shape, dtype=value.dtype, device="cpu")
            buffer.copy_(value.detach())
    return {k: v for k, v in buffers.items() if k in state_dict}


@dataclass
class _Pending:  # a step's captured weights, written once (on the worker), snapshotted by each version of it

    epoch: int
    step: int
    tensors: dict[str, Any]
    path: Path | None = None

    def write(self, recorder: modelyard.TrainingRecorder) -> Path:
        if self.path is None:
            from safetensors.torch import save_file

            path = recorder.scratch_dir(prefix="modelyard-lightning-") / WEIGHTS_NAME
            save_file(self.tensors, str(path), metadata={"format": "pt"})
            self.path = path
        return self.path

    def release(self) -> None:  # every version of the step snapshotted the file by now
        shutil.rmtree(self.path.parent if self.path else "", ignore_errors=True)


class ModelyardCallbackImpl:
    """Record every checkpoint of a Lightning run as a version in the modelyard registry.

    One model per ``ModelCheckpoint`` (see :meth:`modelyard.TrainingRecorder.model_names`); each file it writes
    is a version of ``model.safetensors`` plus (unless ``save_training_state=False``) the ``.ckpt``, iteration
    = global step, tagged ``best``/``last`` as the trainer's files are; rotated-away files are removed. No
    ``ModelCheckpoint``: the final model (``last``, ``final``). Global zero records; ``fit`` waits for uploads.

    Args:
        task: The task to file models under. Default: the current task, else a new one named after the
            module's class and the logger's version (closed when ``fit`` ends, failed when it raises).
        project: The project of a task created here (default: the logger's name, else ``"default"``).
        name: The model name (default: the LightningModule's class name).
        label_enumeration: Label name to id, or class names. Default: found in the module's or datamodule's
            hyperparameters or on the datamodule (see :func:`modelyard.discover_labels`).
        discover_labels: Look for labels when ``label_enumeration`` is not given.
        save_training_state: Store the ``.ckpt`` (optimizer state, loops, callbacks) with each version.
        mirror_retention: Remove a version when ``ModelCheckpoint`` deletes its file.
        tags: Tags of the models.
        upload_uri: Where the weights upload (default: modelyard's destination precedence).

    Raises:
        LabelError: Invalid labels, or (at setup, on every rank) labels that do not fit the output count.
        ValueError: A ``ModelCheckpoint`` writes to a remote folder (at the start of training, on every rank).
    """

    #: ``"lightning.pytorch"`` or ``"pytorch_lightning"``: set by each concrete class.
    namespace: str = ""

    def __init__(self, *, task: Task | None = None, project: str | None = None, name: str | None = None,
                 label_enumeration: Mapping[str, int] | Sequence[str] | None = None,
                 discover_labels: bool = True, save_training_state: bool = True,
                 mirror_retention: bool = True, tags: Sequence[str] | None = None,
                 upload_uri: str | None = None) -> None:
        super().__init__()
        if task is not None and not isinstance(task, Task):
            raise TypeError(f"task must be a modelyard Task, got {type(task).__name__}")
        self._labels_arg = modelyard.labels_from(label_enumeration) if label_enumeration is not None else None
        self._task_arg, self._project, self._name, self._upload_uri = task, project, name, upload_uri
        self._discover_labels = bool(discover_labels)
        self.save_training_state, self.mirror_retention = bool(save_training_state), bool(mirror_retention)
        self._tags = list(tags) if tags is not None else None
        self.recorder: modelyard.TrainingRecorder | None = None
        self._reset()

    def _reset(self) -> None:
        self._active = self._dirty = self._poll_always = False
        self._labels: dict[str, int] | None = None
        self._labels_from: str | None = None
        self._mirrors: list[_Mirror] = []
        self._pending: _Pending | None = None
        self._buffers: dict[str, Any] = {}
        self._writing: Future[Path] | None = None  # writing the newest capture, whose buffers the next reuses
        self._specified: set[int] = set()  # the streams whose model is created

    @property
    def task(self) -> Task | None:
        """The task the run's models are filed under (once the first version is recorded)."""
        return self.recorder.task if self.recorder is not None else None

    @property
    def model_ids(self) -> list[str]:
        """The ids of the models of the current or last run: one per ModelCheckpoint, or the final model."""
        return [m.id for _, m in sorted(dict(self.recorder.models).items())] if self.recorder is not None else []

    @property
    def labels(self) -> dict[str, int] | None:
        """The label enumeration of the run (explicit or discovered), once ``fit`` started."""
        return dict(self._labels) if self._labels is not None else None

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Resolve and check the labels, on every rank (a bad label set fails every rank alike)."""
        if stage != "fit":
            return
        self._reset()
        self.recorder = None  # model_ids now describe this run
        self._active = True
        datamodule = getattr(trainer, "datamodule", None)
        self._labels, self._labels_from = modelyard.discover_labels(
            _sources(pl_module, datamodule), self._labels_arg, discover=self._discover_labels)
        _check_local(_model_checkpoints(trainer))  # before ModelCheckpoint.setup touches a remote folder

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Note the ModelCheckpoint callbacks and the files already there; start the run's recorder."""
        if not self._active:
            return
        checkpoints = _model_checkpoints(trainer)
        _check_local(checkpoints)  # the folders are resolved by now (default_root_dir)
        if not trainer.is_global_zero:
            return
        base = self._name or type(pl_module).__name__
        names = modelyard.TrainingRecorder.model_names(base, [getattr(c, "monitor", None) for c in checkpoints])
        for index, (checkpoint, name) in enumerate(zip(checkpoints, names, strict=True)):
            mirror = _Mirror(checkpoint, index, name)
            # Files there before this run (a resumed run's restored top-k) are never recorded as new.
            mirror.preexisting = {p: fp for p in _current_files(checkpoint) if (fp := _fingerprint(p))}
            self._mirrors.append(mirror)
            if getattr(checkpoint, "save_weights_only", False):
                self._poll_always = True  # weights-only saves do not call on_save_checkpoint
        module_name, logger = type(pl_module).__name__, getattr(trainer, "logger", None)
        version = getattr(logger, "version", None)  # None without a logger
        task_name = module_name if version is None else \
            f"{module_name} {version if isinstance(version, str) else f'version_{version}'}"
        project = self._project or (str(getattr(logger, "name", "") or "") or None if logger else None)
        self.recorder = modelyard.TrainingRecorder(framework=FRAMEWORK, task=self._task_arg, project=project,
                                                   task_name=task_name, upload_uri=self._upload_uri,
                                                   background=True)

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        """Capture the weights being saved (once per step) in memory; the next hook records the file."""
        self._dirty = True
        if not self._active or not trainer.is_global_zero or self.recorder is None:
            return
        step, state_dict = int(checkpoint.get("global_step", trainer.global_step)), checkpoint.get("state_dict")
        if isinstance(state_dict, Mapping) and state_dict and (self._pending is None or self._pending.step != step):
            self._pending = self._write(int(checkpoint.get("epoch", trainer.current_epoch)), step, state_dict)

    def _write(self, epoch: int, step: int, state_dict: Mapping[str, Any]) -> _Pending:
        """Copy the weights into the buffers (once the worker wrote the previous copy: memory never grows)."""
        assert self.recorder is not None
        if self._writing is not None:
            self._writing.exception()  # waits only when saves come faster than the worker writes
            self.recorder.check()
        return _Pending(epoch, step, _capture(self._buffers, state_dict))

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        """Record checkpoints saved since the previous hook (before this batch's optimizer step)."""
        if self._dirty or self._poll_always:
            self._poll(trainer, pl_module)
        elif self.recorder is not None:
            self.recorder.check()  # background recording's errors surface here, in the training thread

    def _poll_hook(self, trainer: Any, pl_module: Any) -> None:  # e.g. at the end of validation
        self._poll(trainer, pl_module)

    on_train_epoch_start = on_train_epoch_end = on_validation_start = on_train_end = _poll_hook

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        """Record the last checkpoints (or the final model), then wait until the run's versions are stored.

        Raises:
            UploadError: An upload of this run failed (a task created here is marked failed).
        """
        if not self._active:
            return
        if not _model_checkpoints(trainer):
            self._record_final(trainer, pl_module)  # on every rank: trainer.save_checkpoint is collective
        self._poll(trainer, pl_module, force=True)
        self._active = False
        if trainer.is_global_zero and self.recorder is not None:
            self.recorder.finish()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """Record the checkpoints saved so far; mark a task created here as failed."""
        if not self._active:
            return
        self._active = False
        if not trainer.is_global_zero or self.recorder is None:
            return
        try:
            self._poll(trainer, pl_module, force=True, active=True)
        except Exception as error:
            raise error from exception
        finally:
            self.recorder.finish(exception)

    def _poll(self, trainer: Any, pl_module: Any, *, force: bool = False, active: bool = False) -> None:
        # Record every checkpoint file change since the previous poll.
        if not (self._dirty or self._poll_always or force) or not (self._active or active):
            return
        self._dirty = False
        pending, self._pending = self._pending, None
        recorder = self.recorder
        if not trainer.is_global_zero or recorder is None:
            return
        recorder.check()
        if pending is not None:
            self._writing = recorder.submit(pending.write, recorder)  # Lightning's own write is over by now
        for mirror in self._mirrors:
            for path, (fp, version) in list(mirror.seen.items()):
                if _fingerprint(path) != fp:
                    del mirror.seen[path]  # deleted, or replaced by a newer save under the same name
                    if self.mirror_retention:
                        recorder.submit(recorder.drop, version, key=mirror.index)
            for path in _current_files(mirror.checkpoint):
                current = _fingerprint(path)
                if current is None or path in mirror.seen or mirror.preexisting.get(path) == current:
                    continue
                if pending is None:  # a weights-only save: nothing captured yet, and no optimizer step since
                    pending = self._write(int(trainer.current_epoch), int(trainer.global_step),
                                          pl_module.state_dict())
                    self._writing = recorder.submit(pending.write, recorder)
                mirror.seen[path] = (current, self._record(trainer, pl_module, mirror, path, pending))
            self._retag(mirror)
        if pending is not None:
            recorder.submit(pending.release)  # each version recorded above holds its own link

    def _model(self, trainer: Any, pl_module: Any, key: int, name: str, checkpoint: Any) -> None:
        assert self.recorder is not None
        if key not in self._specified:  # the config is read here, in the training thread, once
            self._specified.add(key)
            config = run_config(trainer, pl_module, self.namespace, checkpoint)
            if self._labels_from:
                config["labels_from"] = self._labels_from
            self.recorder.submit(self.recorder.add_model, key, name=name, config=config, labels=self._labels,
                                 tags=self._tags)

    def _record(self, trainer: Any, pl_module: Any, mirror: _Mirror, path: str, pending: _Pending
                ) -> Future[modelyard.ModelVersion]:
        """Record one checkpoint file as a version: a package of ``model.safetensors`` and the ``.ckpt``."""
        assert self.recorder is not None
        self._model(trainer, pl_module, mirror.index, mirror.name, mirror.checkpoint)
        # A link to the .ckpt now, in the training thread: rotation may delete the file before the worker runs.
        ckpt = [next(self.recorder.scratch_dir(prefix="modelyard-lightning-", near=os.path.dirname(path),
                                               link=[path]).iterdir())] if self.save_training_state else []
        checkpoint, monitor = mirror.checkpoint, getattr(mirror.checkpoint, "monitor", None)
        metrics = dict(getattr(trainer, "callback_metrics", None) or {})
        for candidate, score in (getattr(checkpoint, "best_k_models", None) or {}).items():
            if monitor and _is_local(candidate) and _real(candidate) == path:
                metrics[monitor] = score  # the score ModelCheckpoint ranked this file by
        metadata = {"mode": getattr(checkpoint, "mode", None), "epoch": pending.epoch,
                    "global_step": pending.step, "checkpoint_file": os.path.basename(path),
                    "training_state": self.save_training_state,
                    "weights_only": bool(getattr(checkpoint, "save_weights_only", False)), "final": checkpoint is None}
        recorder = self.recorder
        mirror.newest = recorder.submit(  # on the worker; the version snapshots (hard-links) both files
            lambda: recorder.record([*ckpt, pending.write(recorder)], key=mirror.index, iteration=pending.step,
                                    metrics=metrics, monitor=monitor, metadata=metadata,
                                    target_filename=Path(path).stem or "checkpoint"))
        return mirror.newest

    def _retag(self, mirror: _Mirror) -> None:
        """Tag the version of the trainer's best file ``best``, of its last file (or the newest) ``last``."""
        assert self.recorder is not None
        versions = {path: version for path, (_, version) in mirror.seen.items()}
        best, last = (versions.get(_real(p)) if p and _is_local(p) else None for p in (
            getattr(mirror.checkpoint, "best_model_path", ""), getattr(mirror.checkpoint, "last_model_path", "")))
        if not getattr(mirror.checkpoint, "save_last", None) or last is None:
            last = mirror.newest if any(v is mirror.newest for v in versions.values()) else None
        for tag, version in ((BEST_TAG, best), (LAST_TAG, last)):
            if version is not None:
                self.recorder.submit(self.recorder.tag, version, tag, key=mirror.index)

    def _record_final(self, trainer: Any, pl_module: Any) -> None:
        """With no ModelCheckpoint: store the final weights (and a .ckpt to resume from) as one version."""
        recorder = self.recorder if trainer.is_global_zero else None
        folder = recorder.scratch_dir(prefix="modelyard-lightning-") if recorder else Path(tempfile.gettempdir())
        if self.save_training_state:
            # Collective: every rank calls it, the global-zero rank writes; on_save_checkpoint captures weights.
            trainer.save_checkpoint(str(folder / "final.ckpt"), weights_only=False)
        if recorder is None:
            return
        self._dirty = False  # that save was ours, not a ModelCheckpoint's
        pending, self._pending = self._pending, None
        pending = pending or self._write(int(trainer.current_epoch), int(trainer.global_step), pl_module.state_dict())
        self._writing = recorder.submit(pending.write, recorder)
        mirror = _Mirror(None, FINAL, self._name or type(pl_module).__name__)
        version = self._record(trainer, pl_module, mirror, str(folder / "final.ckpt"), pending)
        for tag in (LAST_TAG, FINAL_TAG):
            recorder.submit(recorder.tag, version, tag, key=FINAL)
        recorder.submit(pending.release)
