"""The Lightning callback's behaviour, shared by the ``lightning.pytorch`` and ``pytorch_lightning`` classes.

Only public, duck-typed attributes of the trainer, module and ``ModelCheckpoint`` are used; every registry
rule is :class:`modelyard.TrainingRecorder`'s. Lightning has no "checkpoint file written/deleted" hook and
runs ``ModelCheckpoint`` last, so ``on_save_checkpoint`` captures the weights being saved, and the next hook
(always before the next optimizer step) compares each ``ModelCheckpoint``'s ``best_k_models``,
``best_model_path`` and ``last_model_path`` and the files' identities with what it saw: a new or rewritten
file becomes a version, a file gone or replaced has its version dropped (top-k rotation mirrored).

The training thread pays a memory copy of the weights into reusable buffers, a few ``stat`` calls and a hard
link per new ``.ckpt``; writing ``model.safetensors`` and the registry work run in order on the recorder's
background worker (``TrainingRecorder(background=True)``), whose errors are raised at the next hook.
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


def _model_checkpoints(trainer: Any) -> list[Any]:
    """The trainer's ModelCheckpoint callbacks (anything with ModelCheckpoint's public file state)."""
    return [c for c in getattr(trainer, "checkpoint_callbacks", None) or []
            if all(hasattr(c, a) for a in ("best_k_models", "best_model_path", "last_model_path"))]


def _check_local(checkpoints: list[Any]) -> None:
    """Refuse ModelCheckpoint callbacks writing to remote folders (on every rank alike, before training)."""
    for checkpoint in checkpoints:
        dirpath = getattr(checkpoint, "dirpath", None)
        if dirpath is not None and not _is_local(dirpath):
            raise ValueError(
                f"ModelyardCallback records checkpoints written to a local folder; a ModelCheckpoint writes "
                f"to {os.fspath(dirpath)!r}. Give it a local dirpath: modelyard uploads to remote storage "
                "itself (pass upload_uri= to ModelyardCallback, or set MODELYARD_DEFAULT_OUTPUT_URI).")


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


def _settings(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: modelyard.json_safe(getattr(obj, name)) for name in names if hasattr(obj, name)}


def run_config(trainer: Any, module: Any, namespace: str, checkpoint: Any | None) -> dict[str, Any]:
    """Build a model's ``config_dict``: module, datamodule, trainer, its ModelCheckpoint's settings, versions."""
    config: dict[str, Any] = {"module": _described(module)}
    datamodule = getattr(trainer, "datamodule", None)
    if datamodule is not None:
        config["datamodule"] = _described(datamodule)
    config["trainer"] = _settings(trainer, _TRAINER_SETTINGS)
    for name in ("strategy", "accelerator"):
        if getattr(trainer, name, None) is not None:
            config["trainer"][name] = type(getattr(trainer, name)).__name__
    if checkpoint is not None:
        config["checkpoint"] = _settings(checkpoint, _CHECKPOINT_SETTINGS)
    config["versions"] = {"namespace": namespace, "lightning": _version(namespace.split(".")[0].replace(
        "_", "-")), "torch": _version("torch")}
    return config


def _sources(module: Any, datamodule: Any) -> list[tuple[str, Any]]:
    """The places labels are looked for: module hparams, datamodule hparams, then datamodule attributes."""
    sources: list[tuple[str, Any]] = []
    for label, obj in (("module.hparams", module), ("datamodule.hparams", datamodule)):
        hparams = getattr(obj, "hparams", None) if obj is not None else None
        if isinstance(hparams, Mapping):
            sources.append((label, hparams))
    if datamodule is not None:
        sources.append(("datamodule", datamodule))
    return sources


@dataclass
class _Mirror:
    """One ModelCheckpoint: its model's name, the files recorded from it (path -> identity, version)."""

    checkpoint: Any
    index: int
    name: str
    seen: dict[str, tuple[Fingerprint, Future[modelyard.ModelVersion]]] = field(default_factory=dict)
    preexisting: dict[str, Fingerprint] = field(default_factory=dict)
    newest: Future[modelyard.ModelVersion] | None = None


def _capture(buffers: dict[str, Any], state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Copy a state dict's tensors into reusable CPU buffers (one per name, dtypes kept; no allocation while
    names, shapes and dtypes stay the same); the next capture overwrites them."""
    import torch

    for name, value in state_dict.items():
        if isinstance(name, str) and isinstance(value, torch.Tensor) and not value.is_meta:
            buffer = buffers.get(name)
            if buffer is None or buffer.shape != value.shape or buffer.dtype != value.dtype:
                buffers[name] = buffer = torch.empty(value.shape, dtype=value.dtype, device="cpu")
            buffer.copy_(value.detach())
    return {k: v for k, v in buffers.items() if k in state_dict}


@dataclass
class _Pending:
    """A step's captured weights, written once (on the worker) and linked into each version of the step."""

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

    def release(self) -> None:  # every version of the step holds its own link by now
        if self.path is not None:
            shutil.rmtree(self.path.parent, ignore_errors=True)


class ModelyardCallbackImpl:
    """Record every checkpoint of a Lightning run as a version in the modelyard registry.

    One ``OutputModel`` per ``ModelCheckpoint`` (named after the module's class, plus the monitored metric
    when there are several); each file it writes is a version holding ``model.safetensors`` and, unless
    ``save_training_state=False``, the ``.ckpt``; ``iteration`` is the global step; ``best``/``last`` follow
    the trainer's files; rotated-away files have their version removed. Without ``ModelCheckpoint`` the final
    model is recorded (``last``, ``final``). Only global-zero records; ``fit`` waits for the run's uploads.

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
        self._task_arg = task
        self._project = project
        self._name = name
        self._discover_labels = bool(discover_labels)
        self.save_training_state = bool(save_training_state)
        self.mirror_retention = bool(mirror_retention)
        self._tags = list(tags) if tags is not None else None
        self._upload_uri = upload_uri
        self.recorder: modelyard.TrainingRecorder | None = None
        self._reset()

    def _reset(self) -> None:
        self._active = False
        self._dirty = False
        self._poll_always = False
        self._labels: dict[str, int] | None = None
        self._labels_from: str | None = None
        self._mirrors: list[_Mirror] = []
        self._pending: _Pending | None = None
        self._buffers: dict[str, Any] = {}
        self._writing: Future[Path] | None = None  # writing the newest capture, whose buffers the next reuses
        self._specified: set[int] = set()

    @property
    def task(self) -> Task | None:
        """The task the run's models are filed under (once the first version is recorded)."""
        return self.recorder.task if self.recorder is not None else None

    @property
    def model_ids(self) -> list[str]:
        """The ids of the models of the current or last run: one per ModelCheckpoint, or the final model."""
        return [m.id for _, m in sorted(self.recorder.models.items())] if self.recorder is not None else []

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
        module_name = type(pl_module).__name__
        logger = getattr(trainer, "logger", None)
        version = getattr(logger, "version", None) if logger is not None else None
        task_name = module_name if version is None else \
            f"{module_name} {version if isinstance(version, str) else f'version_{version}'}"
        project = self._project or (str(getattr(logger, "name", "") or "") or None if logger else None)
        self.recorder = modelyard.TrainingRecorder(framework=FRAMEWORK, task=self._task_arg, project=project,
                                                   task_name=task_name, upload_uri=self._upload_uri,
                                                   background=True)

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        """Capture the weights of a checkpoint being saved (once per step); the next hook records its file."""
        self._dirty = True
        if not self._active or not trainer.is_global_zero or self.recorder is None:
            return
        step = int(checkpoint.get("global_step", trainer.global_step))
        if self._pending is not None and self._pending.step == step:
            return
        state_dict = checkpoint.get("state_dict")
        if isinstance(state_dict, Mapping) and state_dict:
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
            self.recorder.check()  # an error of the background recording surfaces here, in training

    def _poll_hook(self, trainer: Any, pl_module: Any) -> None:
        """Record checkpoints saved since the previous hook (e.g. at the end of validation)."""
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
        """Record every checkpoint file change since the previous poll."""
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

        def record() -> modelyard.ModelVersion:  # on the worker; the version snapshots (links) both files
            return recorder.record([*ckpt, pending.write(recorder)], key=mirror.index, iteration=pending.step,
                                   metrics=metrics, monitor=monitor, metadata=metadata,
                                   target_filename=Path(path).stem or "checkpoint")

        mirror.newest = recorder.submit(record)
        return mirror.newest

    def _retag(self, mirror: _Mirror) -> None:
        """Tag the version of the trainer's best file ``best``, of its last file (or the newest) ``last``."""
        assert self.recorder is not None
        versions = {path: version for path, (_, version) in mirror.seen.items()}

        def version_of(attribute: str) -> Future[modelyard.ModelVersion] | None:
            path = getattr(mirror.checkpoint, attribute, "")
            return versions.get(_real(path)) if path and _is_local(path) else None

        best, last = version_of("best_model_path"), version_of("last_model_path")
        if not getattr(mirror.checkpoint, "save_last", None) or last is None:
            last = mirror.newest if any(v is mirror.newest for v in versions.values()) else None
        for tag, version in ((BEST_TAG, best), (LAST_TAG, last)):
            if version is not None:
                self.recorder.submit(self.recorder.tag, version, tag, key=mirror.index)

    def _record_final(self, trainer: Any, pl_module: Any) -> None:
        """With no ModelCheckpoint: store the final weights (and a .ckpt to resume from) as one version."""
        zero = trainer.is_global_zero and self.recorder is not None
        folder = self.recorder.scratch_dir(prefix="modelyard-lightning-") if zero and self.recorder \
            else Path(tempfile.gettempdir())
        if self.save_training_state:
            # Collective: every rank calls it, the global-zero rank writes; on_save_checkpoint writes weights.
            trainer.save_checkpoint(str(folder / "final.ckpt"), weights_only=False)
        if not zero or self.recorder is None:
            return
        self._dirty = False  # that save was ours, not a ModelCheckpoint's
        pending, self._pending = self._pending, None
        pending = pending or self._write(int(trainer.current_epoch), int(trainer.global_step), pl_module.state_dict())
        self._writing = self.recorder.submit(pending.write, self.recorder)
        mirror = _Mirror(None, FINAL, self._name or type(pl_module).__name__)
        version = self._record(trainer, pl_module, mirror, str(folder / "final.ckpt"), pending)
        for tag in (LAST_TAG, FINAL_TAG):
            self.recorder.submit(self.recorder.tag, version, tag, key=FINAL)
        self.recorder.submit(pending.release)
