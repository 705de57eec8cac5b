"""The registry side of a Lightning run, on one background thread so that training never waits for it.

The callback's hooks only notice what the trainer did (a checkpoint file appeared, was replaced, was deleted)
and hand it here as a task; one worker thread runs the tasks in order: writing ``model.safetensors``,
creating the task and the models, recording versions (``update_weights_package``), moving the ``best`` and
``last`` tags, removing the versions whose files the trainer deleted. An error in a task is raised in the
training thread at the callback's next hook, never dropped.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard import NotFoundError, OutputModel, Task

from ._weights import WEIGHTS_NAME, write_tensors

FRAMEWORK = "PyTorch Lightning"
BEST_TAG = "best"
LAST_TAG = "last"
_SETTLED = ("ready", "failed")

#: A checkpoint file as the trainer left it: its real path and (inode, size, mtime_ns).
FileKey = tuple[str, tuple[int, int, int]]


@dataclass
class ModelSpec:
    """How to create one model: its name and configuration, computed in the training thread.

    Attributes:
        name: The model name (``None``: the task's name).
        config: The ``config_dict``.
        suffix: Appended to the name when a run has several ModelCheckpoint callbacks.
    """

    name: str | None
    config: dict[str, Any]
    suffix: str | None = None


@dataclass
class TaskSpec:
    """The task to use, or how to create one (project and name from the logger or the module class)."""

    task: Task | None
    project: str | None
    name: str


@dataclass
class Weights:
    """One captured state dict, written once to ``model.safetensors`` and shared by the versions of a step."""

    tensors: dict[str, Any] | None
    folder: Path
    path: Path | None = None
    written: threading.Event = field(default_factory=threading.Event)

    def write(self) -> Path:
        """Write the captured tensors (once) and return the file."""
        if self.path is None:
            assert self.tensors is not None
            try:
                self.path = write_tensors(self.tensors, self.folder)
            finally:
                self.tensors = None  # the snapshot buffers may be reused from now on
                self.written.set()
        return self.path

    def release(self) -> None:
        """Remove the shared file once every version of its step holds its own link to it."""
        shutil.rmtree(self.folder, ignore_errors=True)


class Recorder:
    """Runs a run's registry work in order on one background thread.

    Args:
        task: Which task to file the models under.
        labels: The label enumeration of every model of the run.
        tags: User tags of the models.
        upload_uri: Where the weights upload (``None``: modelyard's destination precedence).
        mirror_retention: Remove a version when the trainer deleted its file.
    """

    def __init__(self, *, task: TaskSpec, labels: Mapping[str, int] | None, tags: Sequence[str] | None,
                 upload_uri: str | None, mirror_retention: bool) -> None:
        self._task_spec = task
        self.task: Task | None = task.task
        self.owns_task = False
        self._labels = dict(labels) if labels is not None else None
        self._tags = list(tags) if tags is not None else None
        self._upload_uri = upload_uri
        self._mirror_retention = mirror_retention
        self.models: dict[int, OutputModel] = {}
        self._versions: dict[int, dict[FileKey, int]] = {}
        self._tagged: dict[tuple[int, str], int] = {}
        self._newest: dict[int, int] = {}
        self._retiring: list[tuple[OutputModel, int]] = []
        #: Our folders (links to the trainer's .ckpt and to model.safetensors) until their upload settles.
        self._scratch: list[tuple[OutputModel, int, Path]] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelyard-lightning")
        self._futures: list[Future[Any]] = []
        self._lock = threading.Lock()

    # -- the thread -------------------------------------------------------------------------------------

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Queue a task; it runs after every task queued before it."""
        future = self._pool.submit(fn, *args)
        with self._lock:
            self._futures.append(future)
        return future

    def raise_failures(self) -> None:
        """Raise the error of a finished task, if any (cheap: called from the training thread's hooks)."""
        with self._lock:
            done = [f for f in self._futures if f.done()]
            self._futures = [f for f in self._futures if not f.done()]
        for future in done:
            error = future.exception()
            if error is not None:
                raise error

    def flush(self) -> None:
        """Wait for every queued task; raise the first error."""
        with self._lock:
            futures = list(self._futures)
        for future in futures:
            future.exception()  # waits
        self.raise_failures()

    def shutdown(self) -> None:
        """Stop the thread once its queue is done."""
        self._pool.shutdown(wait=True)

    # -- tasks (run on the thread) -------------------------------------------------------------------------

    def _resolve_task(self) -> Task:
        if self.task is None:
            self.task = Task.current_task()
        if self.task is None:
            self.task = Task.init(project_name=self._task_spec.project, task_name=self._task_spec.name)
            self.owns_task = True
        return self.task

    def _model(self, index: int, spec: ModelSpec) -> OutputModel:
        model = self.models.get(index)
        if model is None:
            task = self._resolve_task()
            name = (spec.name or task.name) + (spec.suffix or "")
            model = OutputModel(task, config_dict=spec.config, label_enumeration=self._labels, name=name,
                                tags=self._tags, framework=FRAMEWORK)
            self.models[index] = model
            self._versions[index] = {}
        return model

    def record(self, index: int, spec: ModelSpec, key: FileKey | None, weights: Weights, folder: Path,
               step: int, metadata: dict[str, Any]) -> int:
        """Record one checkpoint as a new version: a package of ``model.safetensors`` and the ``.ckpt``.

        Args:
            index: Which ModelCheckpoint (its model).
            spec: How to create the model if this is its first version.
            key: The trainer's file this version mirrors (``None``: the final model, mirroring no file).
            weights: The state dict saved with it.
            folder: A fresh folder of ours holding the version's ``.ckpt`` (a hard link to the trainer's file)
                or nothing (``save_training_state=False``); ``model.safetensors`` is linked in here. The files
                are handed over as not ours to delete (their inode is shared with the trainer's file and the
                step's weights): modelyard snapshots them, and the folder is removed once the upload settled.
            step: The global step.
            metadata: The version's metadata.

        Returns:
            The version number.
        """
        model = self._model(index, spec)
        own_weights = folder / WEIGHTS_NAME
        try:
            # Each version gets its own link to the step's file, removed with its folder once uploaded.
            os.link(weights.write(), own_weights)
        except OSError:
            shutil.copyfile(weights.write(), own_weights)  # another file system
        files = sorted(str(p) for p in folder.iterdir())
        name = Path(key[0]).stem if key is not None else "final"
        model.update_weights_package(weights_filenames=files, target_filename=name or "checkpoint",
                                     upload_uri=self._upload_uri, auto_delete_file=False, iteration=step,
                                     metadata=metadata, snapshot="link")
        version = model.versions[-1].version
        self._scratch.append((model, version, folder))
        if key is not None:
            self._versions[index][key] = version
        self._newest[index] = version
        self.retire_settled(wait=False)
        return version

    def forget(self, index: int, key: FileKey) -> None:
        """The trainer deleted (or replaced) this file: remove its version unless retention is off."""
        version = self._versions.get(index, {}).pop(key, None)
        if version is not None and self._mirror_retention:
            self._retiring.append((self.models[index], version))
        self.retire_settled(wait=False)

    def retag(self, index: int, best: FileKey | None, last: FileKey | None) -> None:
        """Tag the version of the trainer's best file ``best``, of its last file (or the newest) ``last``."""
        model = self.models.get(index)
        if model is None:
            return
        versions = self._versions.get(index, {})
        wanted: dict[str, int] = {}
        if best is not None and best in versions:
            wanted[BEST_TAG] = versions[best]
        if last is not None and last in versions:
            wanted[LAST_TAG] = versions[last]
        elif index in self._newest and self._newest[index] in versions.values():
            wanted[LAST_TAG] = self._newest[index]
        for tag, version in wanted.items():
            if self._tagged.get((index, tag)) != version:
                model.set_version_tags(version, add=[tag], exclusive=True)
                self._tagged[(index, tag)] = version

    def tag_final(self, index: int, version: int) -> None:
        """Tag the final model's only version ``last``."""
        self.models[index].set_version_tags(version, add=[LAST_TAG], exclusive=True)

    def retire_settled(self, *, wait: bool) -> None:
        """Remove the versions whose files are gone, once their uploads settled (all of them if ``wait``).

        Also removes our folders of settled uploads: the links in them would keep rotated-out checkpoints
        on disk.
        """
        pending: list[tuple[OutputModel, int, Path]] = []
        for model, version, folder in self._scratch:
            if wait or _settled(model, version):
                shutil.rmtree(folder, ignore_errors=True)
            else:
                pending.append((model, version, folder))
        self._scratch = pending
        keep: list[tuple[OutputModel, int]] = []
        for model, version in self._retiring:
            try:
                state = model.get_version(version).state
            except NotFoundError:
                continue
            if state not in _SETTLED and not wait:
                keep.append((model, version))  # removing now would wait for its upload
                continue
            model.remove_version(version)  # False when pinned or published: kept, by design
        self._retiring = keep


def _settled(model: OutputModel, version: int) -> bool:
    try:
        return model.get_version(version).state in _SETTLED
    except NotFoundError:
        return True
