"""The Lightning callback's behaviour, shared by the ``lightning.pytorch`` and ``pytorch_lightning`` classes.

Each Trainer expects callbacks built on its own namespace's ``Callback`` class, so :mod:`._callback` and
:mod:`.pytorch_lightning` each build a ``ModelyardCallback`` from this mixin and their own base class. The
mixin only uses public, duck-typed attributes of the trainer, the module and the ``ModelCheckpoint``
callbacks, and only the public ``modelyard`` API.

How checkpoints are found without a private API: Lightning has no "a checkpoint file was written" or "was
deleted" hook, and runs ``ModelCheckpoint`` callbacks after every other callback in each hook. So
``on_save_checkpoint`` (called while a checkpoint is being saved) captures the weights it holds, and the
callback's next hook, which always comes before the next optimizer step, compares each ``ModelCheckpoint``'s
public ``best_k_models``, ``best_model_path`` and ``last_model_path`` and the files' identities (inode, size,
mtime) with what it saw before: a new or rewritten file becomes a new version, a file that is gone or was
replaced has its version removed (top-k rotation mirrored in storage).

What the training thread pays per save: one memory copy of the weights into reusable buffers, a few
``stat`` calls and a hard link to the new ``.ckpt`` (so rotation cannot delete it before it is recorded).
Everything else (writing ``model.safetensors``, the registry, tags, retention) runs on the callback's
background thread (:mod:`._recorder`), and the uploads in modelyard's upload engine.
"""

from __future__ import annotations

import atexit
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard import OutputModel, Task, labels_from_names, validate_labels

from ._discovery import (
    check_labels_fit,
    checkpoint_settings,
    discover_labels,
    json_safe,
    output_count,
    run_config,
)
from ._recorder import FileKey, ModelSpec, Recorder, TaskSpec, Weights
from ._weights import Snapshot

#: The model index of the final model (recorded when no ModelCheckpoint is configured).
FINAL = -1
# Characters a package member name may not hold (modelyard refuses ':' and separators): replaced by '_'.
_UNSAFE_MEMBER = re.compile(r"[^A-Za-z0-9_.=+\-]")

Fingerprint = tuple[int, int, int]


def _fingerprint(path: str) -> Fingerprint | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _is_local(path: Any) -> bool:
    text = os.fspath(path) if isinstance(path, str | os.PathLike) else ""
    return bool(text) and ("://" not in text or text.startswith("file://"))


def _real(path: Any) -> str:
    text = os.fspath(path)
    return os.path.realpath(text[len("file://"):] if text.startswith("file://") else text)


def _score(value: Any) -> float | int | str | None:
    """A monitored value as JSON: a number, ``"nan"``/``"inf"`` text, or ``None``."""
    safe = json_safe(value) if value is not None else None
    return safe if isinstance(safe, float | int | str) and not isinstance(safe, bool) else None


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
    candidates = [*list(getattr(checkpoint, "best_k_models", None) or {}),
                  getattr(checkpoint, "best_model_path", ""), getattr(checkpoint, "last_model_path", "")]
    for candidate in candidates:
        if candidate and _is_local(candidate):
            real = _real(candidate)
            if real not in paths and os.path.isfile(real):
                paths.append(real)
    return sorted(paths, key=lambda p: (_fingerprint(p) or (0, 0, 0))[2])


@dataclass
class _Mirror:
    """One ModelCheckpoint, as the training thread sees it."""

    checkpoint: Any
    index: int
    spec: ModelSpec
    #: The files recorded (or being recorded) and their identities.
    seen: dict[str, Fingerprint] = field(default_factory=dict)
    #: Files there before this run started (a resumed run's restored top-k): never recorded as new.
    preexisting: dict[str, Fingerprint] = field(default_factory=dict)
    tags: tuple[FileKey | None, FileKey | None] = (None, None)


@dataclass
class _Pending:
    """Weights captured while a checkpoint was saved, waiting for the hook that records its file."""

    epoch: int
    step: int
    weights: Weights


class ModelyardCallbackImpl:
    """Record every checkpoint of a Lightning run as a version in the modelyard registry.

    Every file the trainer's ``ModelCheckpoint`` callbacks write becomes a new weights version of one
    ``OutputModel`` per run and per ``ModelCheckpoint``: a package holding ``model.safetensors`` (the state
    dict saved in that checkpoint, loadable without unpickling) and, unless ``save_training_state=False``,
    the ``.ckpt`` itself, to resume from. ``iteration`` is the global step; the monitored metric and its
    value, the epoch and the file name are in the version's metadata; the version of the trainer's best file
    is tagged ``best`` and of its last file (or the newest) ``last``. When ``ModelCheckpoint`` deletes a file
    (top-k rotation) its version is removed from storage too, unless it is pinned or the model published.
    With no ``ModelCheckpoint``, the final model is recorded at the end of ``fit``. Only the global-zero rank
    records anything; ``fit`` returns once every version is uploaded.

    Args:
        task: The modelyard task to file models under. Default: the current task, else a new task named after
            the module's class and the logger's version, in a project named after the logger (closed when
            ``fit`` ends).
        project: The project of a task created here (default: the logger's name, else ``"default"``).
        name: The model name (default: the task's name; with several ``ModelCheckpoint`` callbacks, each
            model's name also says which one).
        label_enumeration: Label name to id, or a list of class names. Default: found in the module's or the
            datamodule's hyperparameters, or on the datamodule, under ``label2id``, ``id2label``,
            ``class_names``, ``classes`` or ``labels``, and checked against a declared ``num_classes`` or
            ``num_labels``.
        discover_labels: Look for labels when ``label_enumeration`` is not given.
        save_training_state: Store the ``.ckpt`` (optimizer state, loops, callbacks) with each version, so
            training can resume from the registry. ``False`` stores ``model.safetensors`` only.
        mirror_retention: Remove a version when ``ModelCheckpoint`` deletes its file. ``False`` keeps every
            version ever saved.
        tags: Tags of the models.
        upload_uri: Where the weights upload (default: modelyard's destination precedence).

    Raises:
        LabelError: The labels are invalid, or (at setup, on every rank) do not fit the declared output count.
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
        self._labels_arg: dict[str, int] | None = None
        if isinstance(label_enumeration, Mapping):
            self._labels_arg = validate_labels(label_enumeration)
        elif label_enumeration is not None:
            self._labels_arg = labels_from_names(label_enumeration)
        self._task_arg = task
        self._project = project
        self._name = name
        self._discover_labels = bool(discover_labels)
        self.save_training_state = bool(save_training_state)
        self.mirror_retention = bool(mirror_retention)
        self._tags = list(tags) if tags is not None else None
        self._upload_uri = upload_uri
        self._recorder: Recorder | None = None
        self._snapshot = Snapshot()
        self._reset()

    def _reset(self) -> None:
        self._active = False
        self._dirty = False
        self._poll_always = False
        self._labels: dict[str, int] | None = None
        self._labels_from: str | None = None
        self._mirrors: list[_Mirror] = []
        self._pending: _Pending | None = None
        self._last_weights: Weights | None = None
        self._scratch_roots: list[str] = []
        self._scratch_dev: int | None = None
        self._folders = 0

    # -- public read-only state -----------------------------------------------------------------------

    @property
    def task(self) -> Task | None:
        """The task the run's models are filed under (once the first version is recorded)."""
        return self._recorder.task if self._recorder is not None else None

    @property
    def model_ids(self) -> list[str]:
        """The ids of the models of the current or last run: one per ModelCheckpoint, or the final model."""
        if self._recorder is None:
            return []
        return [model.id for _, model in sorted(self._recorder.models.items())]

    @property
    def labels(self) -> dict[str, int] | None:
        """The label enumeration of the run (explicit or discovered), once ``fit`` started."""
        return dict(self._labels) if self._labels is not None else None

    # -- Lightning hooks: setup and start ----------------------------------------------------------------

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Resolve and check the labels, on every rank (a bad label set fails every rank alike)."""
        if stage != "fit":
            return
        self._reset()
        self._recorder = None  # the previous run's (stopped) thread; model_ids now describe this run
        self._active = True
        datamodule = getattr(trainer, "datamodule", None)
        labels: dict[str, int] | None = self._labels_arg
        where: str | None = "label_enumeration"
        if labels is None and self._discover_labels:
            labels, where = discover_labels(pl_module, datamodule)
        if labels is not None and where is not None:
            count, count_from = output_count(pl_module, datamodule)
            if count is not None and count_from is not None:
                check_labels_fit(labels, count, where, count_from)
        self._labels, self._labels_from = labels, where if labels is not None else None
        _check_local(_model_checkpoints(trainer))  # before ModelCheckpoint.setup touches a remote folder

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Note the ModelCheckpoint callbacks, the files already there, and start the background thread."""
        if not self._active:
            return
        checkpoints = _model_checkpoints(trainer)
        _check_local(checkpoints)  # the folders are resolved by now (default_root_dir)
        if not trainer.is_global_zero:
            return
        for index, checkpoint in enumerate(checkpoints):
            spec = self._spec(trainer, pl_module, checkpoint, index, len(checkpoints))
            mirror = _Mirror(checkpoint, index, spec)
            for path in _current_files(checkpoint):
                fp = _fingerprint(path)
                if fp is not None:
                    mirror.preexisting[path] = fp
            self._mirrors.append(mirror)
            if getattr(checkpoint, "save_weights_only", False):
                self._poll_always = True  # weights-only saves do not call on_save_checkpoint
        if self._recorder is not None:
            self._recorder.shutdown()
        self._recorder = Recorder(task=self._task_spec(trainer, pl_module), labels=self._labels,
                                  tags=self._tags, upload_uri=self._upload_uri,
                                  mirror_retention=self.mirror_retention)

    def _spec(self, trainer: Any, pl_module: Any, checkpoint: Any, index: int, count: int) -> ModelSpec:
        settings = checkpoint_settings(checkpoint) if checkpoint is not None else None
        config = run_config(trainer, pl_module, self.namespace, settings)
        if self._labels_from:
            config["labels_from"] = self._labels_from
        suffix = None
        if checkpoint is not None and count > 1:
            monitor = getattr(checkpoint, "monitor", None)
            suffix = f" [{monitor}]" if monitor else f" [checkpoint {index}]"
        return ModelSpec(name=self._name, config=config, suffix=suffix)

    def _task_spec(self, trainer: Any, pl_module: Any) -> TaskSpec:
        module_name = type(pl_module).__name__
        logger = getattr(trainer, "logger", None)
        if logger is None:
            return TaskSpec(self._task_arg, self._project, module_name)
        version = getattr(logger, "version", None)
        version_text = version if isinstance(version, str) else f"version_{version}"
        project = self._project or str(getattr(logger, "name", "") or "") or None
        return TaskSpec(self._task_arg, project,
                        f"{module_name} {version_text}" if version is not None else module_name)

    # -- Lightning hooks: saving -------------------------------------------------------------------------

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        """Capture the weights of a checkpoint being saved; the next hook records its file.

        The weights come from the checkpoint itself, so ``model.safetensors`` holds exactly what the ``.ckpt``
        holds. Several saves at one step (top-k and last) share one capture.
        """
        self._dirty = True
        if not self._active or not trainer.is_global_zero or self._recorder is None:
            return
        step = int(checkpoint.get("global_step", trainer.global_step))
        if self._pending is not None and self._pending.step == step:
            return
        state_dict = checkpoint.get("state_dict")
        if isinstance(state_dict, Mapping) and state_dict:
            epoch = int(checkpoint.get("epoch", trainer.current_epoch))
            self._pending = _Pending(epoch, step, self._capture(state_dict))

    def _capture(self, state_dict: Mapping[str, Any]) -> Weights:
        """Copy the weights into the snapshot buffers; the next poll queues their writing.

        The file is written on the background thread after Lightning finished writing its own checkpoint,
        so the two writes do not compete.
        """
        assert self._recorder is not None
        previous = self._last_weights
        if previous is not None and not previous.written.is_set():
            # Saves come faster than the background thread writes: wait, rather than grow memory.
            self._recorder.submit(previous.write).result()
            self._recorder.raise_failures()
        weights = Weights(self._snapshot.capture(state_dict), self._new_folder())
        self._last_weights = weights
        return weights

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        """Record checkpoints saved since the previous hook (before this batch's optimizer step)."""
        if self._dirty or self._poll_always:
            self._poll(trainer, pl_module)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        """Record checkpoints saved since the previous hook."""
        self._poll(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """Record checkpoints saved since the previous hook (e.g. at the end of validation)."""
        self._poll(trainer, pl_module)

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        """Record checkpoints saved since the previous hook."""
        self._poll(trainer, pl_module)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        """Record checkpoints saved since the previous hook."""
        self._poll(trainer, pl_module)

    # -- Lightning hooks: the end ------------------------------------------------------------------------

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        """Record the last checkpoints (or the final model), then wait until every version is stored.

        Raises:
            UploadError: An upload of this run failed (a task created here is marked failed).
        """
        if not self._active:
            return
        if not _model_checkpoints(trainer):
            self._record_final(trainer, pl_module)  # on every rank: trainer.save_checkpoint is collective
        if not trainer.is_global_zero or self._recorder is None:
            self._active = False
            return
        self._poll(trainer, pl_module, force=True)
        self._active = False
        recorder = self._recorder
        try:
            recorder.flush()
            OutputModel.wait_for_uploads()
            recorder.retire_settled(wait=True)
        except BaseException:
            if recorder.owns_task and recorder.task is not None:
                recorder.task.mark_failed()
            raise
        finally:
            recorder.shutdown()
            self._remove_scratch(now=True)
        if recorder.owns_task and recorder.task is not None:
            recorder.task.close()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """Record the checkpoints saved so far; mark a task created here as failed.

        Lightning calls no callback hook after the checkpoint of ``ModelCheckpoint(save_on_exception=True)``
        is written, so that one stays on disk only.
        """
        if not self._active:
            return
        self._active = False
        if not trainer.is_global_zero or self._recorder is None:
            return
        recorder = self._recorder
        try:
            self._poll(trainer, pl_module, force=True, active=True)
            recorder.flush()
        except Exception as error:
            raise error from exception
        finally:
            recorder.shutdown()
            if recorder.owns_task and recorder.task is not None:
                recorder.task.mark_failed()
            self._remove_scratch(now=False)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Stop the background thread if ``fit`` ended without :meth:`on_fit_end`."""
        if stage != "fit" or not self._active:
            return
        self._active = False
        if self._recorder is not None:
            self._recorder.shutdown()
        self._remove_scratch(now=False)

    # -- recording ---------------------------------------------------------------------------------------

    def _poll(self, trainer: Any, pl_module: Any, *, force: bool = False, active: bool = False) -> None:
        """Hand every checkpoint file change since the previous poll to the background thread."""
        if not (self._dirty or self._poll_always or force) or not (self._active or active):
            return
        self._dirty = False
        pending, self._pending = self._pending, None
        recorder = self._recorder
        if not trainer.is_global_zero or recorder is None:
            return
        recorder.raise_failures()
        if pending is not None:
            recorder.submit(pending.weights.write)  # Lightning's own write is over by now
        for mirror in self._mirrors:
            changed = False
            for path, fp in list(mirror.seen.items()):
                if _fingerprint(path) != fp:
                    del mirror.seen[path]  # deleted, or replaced by a newer save under the same name
                    recorder.submit(recorder.forget, mirror.index, (path, fp))
                    changed = True
            for path in _current_files(mirror.checkpoint):
                current = _fingerprint(path)
                if current is None or path in mirror.seen or mirror.preexisting.get(path) == current:
                    continue
                if pending is None:  # a weights-only save: no capture yet, and no optimizer step since
                    pending = _Pending(int(trainer.current_epoch), int(trainer.global_step),
                                       self._capture(pl_module.state_dict()))
                folder = self._new_folder(near=path)
                if self.save_training_state:
                    self._link_checkpoint(path, folder)
                mirror.seen[path] = current
                metadata = self._metadata(trainer, mirror.checkpoint, path, pending)
                recorder.submit(recorder.record, mirror.index, mirror.spec, (path, current), pending.weights,
                                folder, pending.step, metadata)
                changed = True
            tags = (self._key(mirror, getattr(mirror.checkpoint, "best_model_path", "")),
                    self._key(mirror, getattr(mirror.checkpoint, "last_model_path", ""))
                    if getattr(mirror.checkpoint, "save_last", None) else None)
            if changed or tags != mirror.tags:
                mirror.tags = tags
                recorder.submit(recorder.retag, mirror.index, *tags)
        if pending is not None:
            recorder.submit(pending.weights.release)  # each version recorded above has its own link

    @staticmethod
    def _key(mirror: _Mirror, path: Any) -> FileKey | None:
        if not path or not _is_local(path):
            return None
        real = _real(path)
        fp = mirror.seen.get(real)
        return (real, fp) if fp is not None else None

    def _metadata(self, trainer: Any, checkpoint: Any, path: str, pending: _Pending) -> dict[str, Any]:
        monitor = getattr(checkpoint, "monitor", None)
        value = None
        if monitor:
            for candidate, score in (getattr(checkpoint, "best_k_models", None) or {}).items():
                if _is_local(candidate) and _real(candidate) == path:
                    value = score
            if value is None:
                value = (getattr(trainer, "callback_metrics", None) or {}).get(monitor)
        return {"monitor": monitor, "value": _score(value), "mode": getattr(checkpoint, "mode", None),
                "epoch": pending.epoch, "global_step": pending.step,
                "checkpoint_file": os.path.basename(path),
                "training_state": self.save_training_state,
                "weights_only": bool(getattr(checkpoint, "save_weights_only", False))}

    def _record_final(self, trainer: Any, pl_module: Any) -> None:
        """With no ModelCheckpoint: store the final weights (and a .ckpt to resume from) as one version."""
        zero = trainer.is_global_zero and self._recorder is not None
        folder = self._new_folder() if zero else Path(tempfile.gettempdir())
        self._pending = None
        if self.save_training_state:
            # Collective: every rank calls it, the global-zero rank writes; on_save_checkpoint captures.
            trainer.save_checkpoint(str(folder / "final.ckpt"), weights_only=False)
        if not zero:
            return
        assert self._recorder is not None
        self._dirty = False  # that save was ours, not a ModelCheckpoint's
        pending, self._pending = self._pending, None
        if pending is None:
            pending = _Pending(int(trainer.current_epoch), int(trainer.global_step),
                               self._capture(pl_module.state_dict()))
        spec = self._spec(trainer, pl_module, None, FINAL, 0)
        metadata = {"epoch": pending.epoch, "global_step": pending.step, "final": True,
                    "training_state": self.save_training_state}
        recorder = self._recorder
        version = recorder.submit(recorder.record, FINAL, spec, None, pending.weights, folder, pending.step,
                                  metadata)
        recorder.submit(lambda: recorder.tag_final(FINAL, version.result()))
        recorder.submit(pending.weights.release)

    # -- scratch files -----------------------------------------------------------------------------------

    def _new_folder(self, near: str | None = None) -> Path:
        """A fresh folder of ours, on the file system of ``near`` when given (so hard links work)."""
        near_dir = os.path.dirname(near) if near is not None else None
        device = os.stat(near_dir).st_dev if near_dir is not None else None
        if not self._scratch_roots or device is not None and device != self._scratch_dev:
            base = None
            if device is not None and os.stat(tempfile.gettempdir()).st_dev != device:
                base = near_dir  # the temp dir is on another disk: a hidden folder beside the checkpoints
            prefix = ".modelyard-lightning-" if base else "modelyard-lightning-"  # hidden next to checkpoints
            root = tempfile.mkdtemp(prefix=prefix, dir=base)
            self._scratch_roots.append(root)
            self._scratch_dev = os.stat(root).st_dev
        self._folders += 1
        folder = Path(self._scratch_roots[-1]) / f"{self._folders:06d}"
        folder.mkdir()
        return folder

    @staticmethod
    def _link_checkpoint(path: str, folder: Path) -> None:
        """Hard-link the trainer's .ckpt into our folder, under a name modelyard packages accept."""
        name = _UNSAFE_MEMBER.sub("_", os.path.basename(path)).lstrip(".") or "checkpoint.ckpt"
        try:
            os.link(path, folder / name)
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            shutil.copy2(path, folder / name)  # no hard links here: a copy, so rotation cannot lose it

    def _remove_scratch(self, *, now: bool) -> None:
        for root in self._scratch_roots:
            if now:
                shutil.rmtree(root, ignore_errors=True)
            else:
                # Uploads may still read from it: removed at interpreter exit, after modelyard's exit drain.
                atexit.register(shutil.rmtree, root, ignore_errors=True)
        self._scratch_roots = []
        self._scratch_dev = None
