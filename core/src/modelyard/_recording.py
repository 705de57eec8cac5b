"""``TrainingRecorder``: the rules every training-loop integration shares, in one place.

An integration (a Lightning, Keras or Trainer callback, or a custom loop) translates its framework's events
into the calls below and keeps only what is framework specific: hooks, finding checkpoints, rank zero,
extracting config, labels and metrics. Everything else lives here, so every integration behaves alike:

- the task: the one passed in, else the current task, else a new one, which the recorder *owns*: it is
  closed ``completed`` when the run finishes and marked ``failed`` when training raises (or the process ends
  before the run finished); a task the caller passed in (or the current task) is never closed;
- one :class:`~modelyard.OutputModel` per checkpoint stream, named after the model (its class), with the
  monitored metric added only to tell two streams apart; two streams never share a name;
- each checkpoint becomes a version whose metadata carries its metrics (``monitor``, ``score`` and
  ``metrics``), and the :class:`~modelyard.ModelVersion` is returned;
- the exclusive tags :data:`BEST_TAG`, :data:`LAST_TAG`, :data:`FINAL_TAG` move so one version holds each;
- retention is mirrored: a version the framework dropped is removed once its upload settled (never while
  it uploads, which would stall training), and never when it is pinned, its model published, or it is
  tagged ``best`` or ``final``;
- at the end it waits for its own uploads only and raises their failures, and removes the scratch folders
  it handed out;
- with ``background=True`` the loop hands its recording work to :meth:`TrainingRecorder.submit`: one
  ordered, bounded worker thread of the recorder's runs it (see :mod:`modelyard._background`), its errors
  are raised in the loop's thread at its next call, and :meth:`TrainingRecorder.finish` runs what is left
  first.
"""

from __future__ import annotations

import atexit
import errno
import os
import re
import shutil
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from ._background import OrderedWorker, drain_all
from ._capture import metric_value
from ._errors import InvalidArgumentError, NotFoundError, UploadError
from ._output_model import OutputModel
from ._settings import exit_timeout
from ._task import Task
from ._uploads import get_engine
from ._versions import ModelVersion

#: The version tag of the best-scoring checkpoint (moved as the score improves).
BEST_TAG = "best"
#: The version tag of the newest checkpoint.
LAST_TAG = "last"
#: The version tag of the model as training left it.
FINAL_TAG = "final"
#: Tags one version of a model holds at a time.
EXCLUSIVE_TAGS = (BEST_TAG, LAST_TAG, FINAL_TAG)
#: Retention never removes a version holding one of these.
PROTECTED_TAGS = (BEST_TAG, FINAL_TAG)
#: Version states after which removing a version no longer waits for its upload.
SETTLED = ("ready", "failed")

# Characters a package member name may not hold (modelyard refuses ':' and separators): replaced by '_'.
_UNSAFE_MEMBER = re.compile(r"[^A-Za-z0-9_.=+\-]")
_unfinished: weakref.WeakSet[TrainingRecorder] = weakref.WeakSet()
T = TypeVar("T")
#: A version as :meth:`TrainingRecorder.tag` and :meth:`~TrainingRecorder.drop` take it: a version, its
#: number, or the future of background work that recorded it.
Recorded = ModelVersion | int | Future[ModelVersion] | Future[int]


def _settled(version: Recorded) -> ModelVersion | int | None:
    """The version a future recorded (waiting for it), ``None`` if that work failed."""
    if isinstance(version, Future):
        return None if version.exception() is not None else version.result()
    return version


def model_names(base: str, monitors: Sequence[str | None]) -> list[str]:
    """Name the models of a run's checkpoint streams: ``base`` alone, or with what tells them apart.

    Args:
        base: The model's name (its class name, or what the user chose).
        monitors: The metric each stream (checkpoint callback) ranks by, ``None`` for none.

    Returns:
        One distinct name per stream: ``base`` when there is one stream, else ``"base [metric]"`` for a
        metric only one stream monitors and ``"base [checkpoint i]"`` for the others.
    """
    if len(monitors) <= 1:
        return [base] * len(monitors)
    names = [f"{base} [{m}]" if m and monitors.count(m) == 1 else f"{base} [checkpoint {i}]"
             for i, m in enumerate(monitors)]
    return [n if names.count(n) == 1 else f"{n} #{i}" for i, n in enumerate(names)]


def version_metadata(metrics: Mapping[str, Any] | None = None, monitor: str | None = None,
                     **extra: Any) -> dict[str, Any]:
    """Return a checkpoint's version metadata: ``monitor``, ``score`` (its value) and ``metrics``.

    ``monitor`` and ``score`` are ``None`` without a monitored metric. Metric values become JSON numbers, or
    ``"nan"``/``"inf"`` text; values that are not numbers are left out.
    """
    values = {str(k): metric_value(v) for k, v in (metrics or {}).items()}
    values = {k: v for k, v in values.items() if v is not None}
    meta: dict[str, Any] = {"monitor": monitor, "score": values.get(monitor) if monitor else None}
    if values:
        meta["metrics"] = values
    meta.update(extra)
    return meta


class TrainingRecorder:
    """Record one training run: its task, its models, their versions, tags and retention.

    Args:
        framework: The framework name recorded on every model.
        task: The task to file the models under (never closed here). Default: the current task, else a new
            task (``project``, ``task_name``) that the recorder owns and closes.
        project: The project of a task created here.
        task_name: The name of a task created here (default: the running script's name).
        upload_uri: Where the versions upload (default: modelyard's destination precedence).
        background: Give the recorder one ordered worker thread for :meth:`submit` (default: :meth:`submit`
            runs the work at once, in the caller's thread).
        max_pending: With ``background``, how many submitted items may wait before :meth:`submit` blocks.

    Example:
        >>> recorder = TrainingRecorder(framework="my-loop", project="demo", task_name="run-1")
        >>> recorder.add_model(name="MyNet", config={"lr": 0.1}, labels={"cat": 0, "dog": 1})
        >>> v = recorder.record("ckpt/", iteration=100, metrics={"val_loss": 0.3}, monitor="val_loss")
        >>> recorder.tag(v, BEST_TAG)
        >>> recorder.finish()  # waits for the run's uploads, closes the task it created
    """

    model_names = staticmethod(model_names)

    def __init__(self, *, framework: str, task: Task | None = None, project: str | None = None,
                 task_name: str | None = None, upload_uri: str | None = None, background: bool = False,
                 max_pending: int = 8) -> None:
        if task is not None and not isinstance(task, Task):
            raise InvalidArgumentError(f"task must be a modelyard Task, got {type(task).__name__}")
        self.framework = framework
        self._task = task
        self._project = project
        self._task_name = task_name
        self._upload_uri = upload_uri
        self.owns_task = False
        self.models: dict[Hashable, OutputModel] = {}
        self._tagged: dict[tuple[str, str], int] = {}
        self._retiring: list[tuple[OutputModel, int]] = []
        self._scratch: list[tuple[Path, OutputModel | None, int | None]] = []
        self._recorded: list[ModelVersion] = []
        self._lock = threading.RLock()
        # Folders handed out but not yet tracked: its own lock, so a loop's thread never waits for background
        # recording (which holds ``_lock``) to get a scratch folder.
        self._handed: list[Path] = []
        self._handed_lock = threading.Lock()
        self._worker = OrderedWorker(f"modelyard-recorder-{framework}", max_pending) if background else None
        if background:
            _arm_exit_drain()
        self.finished = False
        _unfinished.add(self)

    # -- background work ----------------------------------------------------------------------------

    @property
    def background(self) -> bool:
        """Whether :meth:`submit` runs work on the recorder's worker thread."""
        return self._worker is not None

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` after the work submitted before it: on the worker thread if ``background``.

        The work usually calls this recorder (:meth:`add_model`, :meth:`record`, :meth:`tag`, :meth:`drop`).
        Without ``background`` it runs now and its error propagates here. With it, the call returns at once
        unless ``max_pending`` items wait (then it blocks: backpressure); an error of the work is raised in the
        caller's thread by its next call to this recorder (or :meth:`check`) and by :meth:`finish`.

        Returns:
            The work's future (done already without ``background``).

        Raises:
            BaseException: The error of earlier background work, not raised before.
            InvalidArgumentError: The recorder finished.
        """
        if self.finished and not (self._worker is not None and self._worker.in_worker()):
            raise InvalidArgumentError("the recorder finished; start a new TrainingRecorder for a new run")
        if self._worker is None:
            future: Future[T] = Future()
            future.set_result(fn(*args, **kwargs))
            return future
        return self._worker.submit(fn, *args, **kwargs)

    def check(self) -> None:
        """Raise the error of background work not raised before (cheap; a no-op without ``background``)."""
        if self._worker is not None and not self._worker.in_worker():
            self._worker.check()

    def flush(self) -> None:
        """Wait until the submitted work ran; raise its first error not raised before."""
        if self._worker is not None:
            self._worker.flush()

    # -- task and models ----------------------------------------------------------------------------

    @property
    def task(self) -> Task | None:
        """The run's task, once resolved (by :meth:`resolve_task` or the first model)."""
        return self._task

    def resolve_task(self) -> Task:
        """Return the task: the one given, else the current task, else a new one (owned by the recorder)."""
        if self._task is None:
            self._task = Task.current_task()
        if self._task is None:
            self._task = Task.init(project_name=self._project, task_name=self._task_name)
            self.owns_task = True
        return self._task

    def add_model(self, key: Hashable = None, *, name: str | None = None,
                  config: Mapping[str, Any] | None = None, labels: Mapping[str, int] | None = None,
                  tags: Sequence[str] | None = None, comment: str | None = None,
                  model: OutputModel | None = None) -> OutputModel:
        """Create the model of one checkpoint stream (or adopt ``model``), filed under the run's task.

        Args:
            key: Which stream (default ``None``: the run's only model).
            name: The model name (default: the task's name).
            config: The configuration (a JSON-safe mapping).
            labels: The label enumeration.
            tags: User tags.
            comment: A description.
            model: Record into this existing model instead of creating one (its name, config and labels
                are kept; a missing config or labels are filled in).

        Returns:
            The model.
        """
        self.check()
        with self._lock:
            if key in self.models:
                raise InvalidArgumentError(f"the recorder already has a model for {key!r}")
            if model is not None:
                if config and not model.config_text:
                    model.update_design(config_dict=config)
                if labels and not model.labels:
                    model.update_labels(labels)
            else:
                task = self.resolve_task()
                model = OutputModel(task, config_dict=config, label_enumeration=labels,
                                    name=name or task.name, tags=tags, comment=comment,
                                    framework=self.framework)
            self.models[key] = model
            return model

    def model(self, key: Hashable = None) -> OutputModel:
        """Return the model of a stream (:meth:`add_model` first)."""
        try:
            return self.models[key]
        except KeyError:
            raise InvalidArgumentError(f"the recorder has no model for {key!r}: call add_model() first") from None

    # -- scratch folders ----------------------------------------------------------------------------

    def scratch_dir(self, prefix: str = "modelyard-", near: str | None = None,
                    link: Sequence[str | os.PathLike[str]] = ()) -> Path:
        """Return a fresh folder of the recorder's, removed once the version recorded from it settled.

        Args:
            prefix: The folder name's prefix.
            near: Create it on this folder's file system (hidden inside it when the temporary folder is on
                another disk), so hard links into it work.
            link: Files (the framework's own, which it may rotate away) to hard-link into the folder (copied
                across file systems), under names made safe for a package.
        """
        base = None
        if near is not None and os.stat(near).st_dev != os.stat(tempfile.gettempdir()).st_dev:
            base, prefix = near, "." + prefix
        folder = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
        with self._handed_lock:
            self._handed.append(folder)
        for source in link:
            target = folder / (_UNSAFE_MEMBER.sub("_", os.path.basename(source)).lstrip(".") or "file")
            try:
                os.link(source, target)
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                shutil.copy2(source, target)  # no hard links here: a copy, so rotation cannot lose it
        return folder

    def _track_handed(self) -> None:
        with self._handed_lock:
            handed, self._handed = self._handed, []
        self._scratch.extend((folder, None, None) for folder in handed)

    def _claim(self, path: Path, model: OutputModel, version: int) -> None:
        """Tie the scratch folder holding ``path`` to the version recorded from it."""
        self._track_handed()
        resolved = path.resolve()
        for i, (folder, owner, _) in enumerate(self._scratch):
            if owner is None and (resolved == folder.resolve() or folder.resolve() in resolved.parents):
                self._scratch[i] = (folder, model, version)
                return

    # -- versions -----------------------------------------------------------------------------------

    def record(self, path: str | Path | Sequence[str | Path], *, key: Hashable = None,
               iteration: int | None = None, metrics: Mapping[str, Any] | None = None,
               monitor: str | None = None, metadata: Mapping[str, Any] | None = None,
               tags: Sequence[str] = (), target_filename: str | None = None, auto_delete: bool = False,
               snapshot: str = "link", exclude: Sequence[str] | None = None) -> ModelVersion:
        """Record a checkpoint (a folder, a list of files, or one file) as a new version of a stream's model.

        Args:
            path: A folder (a package of its files), a list of files (a package of them), or one file.
            key: The stream (see :meth:`add_model`).
            iteration: The training iteration.
            metrics: The checkpoint's metrics (metric name -> value), stored in its metadata.
            monitor: The metric that ranks checkpoints; its value is stored as ``score``.
            metadata: More facts for the version's metadata.
            tags: Tags of the version; exclusive ones (:data:`EXCLUSIVE_TAGS`) move here.
            target_filename: The name in storage (default: the file's or folder's name).
            auto_delete: The files are ours: deleted once durable (a scratch folder's files always are).
            snapshot: See :meth:`modelyard.OutputModel.add_version` (``"link"``: for frameworks that write
                new files and may delete old ones).
            exclude: For folders, ``fnmatch`` patterns of files to leave out.

        Returns:
            The recorded version (``pending`` until its upload is done).
        """
        self.check()
        with self._lock:
            model = self.model(key)
            meta = {**version_metadata(metrics, monitor), **(metadata or {})}
            exclusive = [t for t in tags if t in EXCLUSIVE_TAGS]
            others = [t for t in tags if t not in EXCLUSIVE_TAGS]
            common = {"upload_uri": self._upload_uri, "target_filename": target_filename,
                      "auto_delete_file": auto_delete, "iteration": iteration, "metadata": meta,
                      "version_tags": others or None, "snapshot": snapshot}
            if isinstance(path, str | Path) and Path(path).is_dir():
                version = model.add_package_version(weights_path=str(path), exclude=exclude, **common)
                self._claim(Path(path), model, version.version)
            elif isinstance(path, str | Path):
                version = model.add_version(str(path), update_comment=False, **common)
                self._claim(Path(path), model, version.version)
            else:
                files = [str(p) for p in path]
                version = model.add_package_version(weights_filenames=files, **common)
                if files:
                    self._claim(Path(files[0]), model, version.version)
            self._recorded.append(version)
            for tag in exclusive:
                self.tag(version, tag)
            self.retire(wait=False)
            return version

    def tag(self, version: Recorded, tag: str, key: Hashable = None) -> None:
        """Move an exclusive tag (``best``, ``last``, ``final``) to ``version`` of a stream's model.

        ``version`` may be the future of background work that recorded it: a failed one tags nothing (its
        error is raised by the recorder already).
        """
        self.check()
        if (version := _settled(version)) is None:
            return
        with self._lock:
            model, number = self._model_of(version, key)
            if self._tagged.get((model.id, tag)) == number:
                return
            model.set_version_tags(number, add=[tag], exclusive=True)
            self._tagged[(model.id, tag)] = number

    def tagged(self, tag: str, key: Hashable = None) -> int | None:
        """Return the version number this recorder last gave ``tag`` in a stream's model."""
        return self._tagged.get((self.model(key).id, tag))

    def drop(self, version: Recorded, key: Hashable = None) -> None:
        """Mirror retention: the framework dropped this checkpoint, so remove its version once settled.

        ``version`` may be a future, as for :meth:`tag`.
        """
        self.check()
        if (version := _settled(version)) is None:
            return
        with self._lock:
            self._retiring.append(self._model_of(version, key))
            self.retire(wait=False)

    def _model_of(self, version: ModelVersion | int, key: Hashable) -> tuple[OutputModel, int]:
        """Return the model a version (or a bare version number of stream ``key``) belongs to, and its number."""
        if isinstance(version, ModelVersion):
            if version.model_id:
                for model in self.models.values():
                    if model.id == version.model_id:
                        return model, version.version
            return self.model(key), version.version
        return self.model(key), int(version)

    def retire(self, *, wait: bool) -> None:
        """Remove the dropped versions whose uploads settled (all of them if ``wait``); tidy scratch folders.

        Versions still uploading are kept for a later call: removing one waits for its upload, which must not
        stall training. A pinned version, one of a published model, or one tagged ``best`` or ``final`` is
        never removed (a protected tag may move away later, so it is looked at again).
        """
        with self._lock:
            keep: list[tuple[OutputModel, int]] = []
            for model, number in self._retiring:
                try:
                    row = model.get_version(number)
                except NotFoundError:
                    continue  # already removed by someone else
                if any(t in PROTECTED_TAGS for t in row.tags) or not wait and row.state not in SETTLED:
                    keep.append((model, number))
                    continue
                model.remove_version(number)  # False when pinned or published: kept, by design
            self._retiring = keep
            self._sweep(final=False)

    def _sweep(self, *, final: bool) -> None:
        """Remove scratch folders whose version is ready (at the end: every one but those of failed uploads)."""
        self._track_handed()
        remaining: list[tuple[Path, OutputModel | None, int | None]] = []
        for folder, model, number in self._scratch:
            state = "ready"
            if model is not None and number is not None:
                try:
                    state = model.get_version(number).state
                except NotFoundError:
                    state = "ready"  # removed: nothing will read the folder any more
            elif not final:
                remaining.append((folder, model, number))  # handed out, nothing recorded from it yet
                continue
            if state == "ready" or final and state != "failed":
                shutil.rmtree(folder, ignore_errors=True)
            elif state == "failed":
                continue  # the only copy of a failed upload's files: kept, the upload error says where
            else:
                remaining.append((folder, model, number))
        self._scratch = remaining

    # -- the end ------------------------------------------------------------------------------------

    def wait(self) -> None:
        """Wait until this recorder's versions settled; raise the failures of its uploads.

        Raises:
            UploadError: An upload of this run failed (naming the model, the file and the cause).
        """
        engine = get_engine()
        errors: list[UploadError] = []
        for model in list(self.models.values()):
            try:
                engine.wait(model_id=model.id)
            except UploadError as e:
                errors.append(e)
        if errors:
            raise errors[0]

    def finish(self, error: BaseException | None = None, *, wait: bool = True) -> None:
        """End the run: wait for its uploads, mirror the last drops, tidy up, close the task it created.

        Args:
            error: The exception training raised, if it did: then nothing is waited for (the uploads go
                on in the background and drain at exit), and a task the recorder created is marked
                ``failed``.
            wait: Wait for the run's uploads (and raise their failures). ``False``: they finish in the
                background; the scratch folders are removed and a task the recorder created is closed at
                interpreter exit, after modelyard's exit drain.

        Raises:
            UploadError: An upload of this run failed; a task the recorder created is marked ``failed``.
        """
        if self.finished:
            return
        self.finished = True
        _unfinished.discard(self)
        late: BaseException | None = None  # background work's error: raised after the task is marked failed
        if self._worker is not None:
            try:
                self._worker.close()  # the submitted work runs first: it records what the uploads are
            except BaseException as e:  # noqa: BLE001 - raised below, once the task says it failed
                late = e
        owned = self._task if self.owns_task else None
        if error is not None or not wait:
            self.retire(wait=False)
            self._track_handed()
            for folder, _, _ in self._scratch:  # uploads may still read them: removed after the exit drain
                atexit.register(shutil.rmtree, folder, ignore_errors=True)
            self._scratch = []
            if owned is not None and (error is not None or late is not None):
                owned.mark_failed(status_reason=str(error if error is not None else late))
            elif owned is not None:
                atexit.register(self._close_at_exit)
            if late is not None:
                raise late from error
            return
        try:
            if late is not None:
                raise late
            self.wait()
            self.retire(wait=True)
        except BaseException as e:
            if owned is not None:
                owned.mark_failed(status_reason=str(e))
            raise
        finally:
            self._sweep(final=True)
        if owned is not None:
            owned.mark_completed()

    def _close_at_exit(self) -> None:
        """Close an owned task once the exit drain settled the uploads: failed if one of ours failed."""
        try:
            states = [v.state for m in self.models.values() for v in m.versions]
            if self._task is not None and "failed" in states:
                self._task.mark_failed(status_reason="an upload failed")
            elif self._task is not None:
                self._task.mark_completed()
        except Exception:  # noqa: BLE001 - at exit the registry may be gone; the drain reported failures
            return

    def __enter__(self) -> TrainingRecorder:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.finish(exc)


def _drain_at_exit() -> None:
    """Run the background work of unfinished recorders at interpreter exit, then the uploads it started.

    This runs before Python joins non-daemon threads; the upload engine's own exit drain may have run
    already, so the uploads this work submitted are drained here too (unfinished ones stay journaled).
    """
    drained, errors = drain_all()
    for error in errors:
        print(f"modelyard: ERROR: recording work failed at exit: {error!r}", file=sys.stderr, flush=True)
    if not drained:
        return
    try:
        get_engine().drain(exit_timeout(), announce=True)
    except Exception as e:  # noqa: BLE001 - at exit the registry may be gone; say so, nothing else to do
        print(f"modelyard: ERROR: draining uploads at exit: {e!r}", file=sys.stderr, flush=True)


_armed = False
_armed_lock = threading.Lock()


def _arm_exit_drain() -> None:
    """Register :func:`_drain_at_exit` once, after the upload engine registered its own exit drain.

    threading's pre-join exit hooks (``atexit`` would run after the join: too late) run last-registered
    first, so the recording work drains before the uploads it submits; and the engine's hook is never first
    registered during shutdown, which Python refuses.
    """
    global _armed
    with _armed_lock:
        if _armed:
            return
        get_engine().start()  # registers the engine's exit drain (and starts its workers) now
        getattr(threading, "_register_atexit", atexit.register)(_drain_at_exit)
        _armed = True


@atexit.register
def _fail_unfinished() -> None:
    """A run whose training never reached its end (an exception no hook saw) leaves its own task failed."""
    for recorder in list(_unfinished):
        if recorder.owns_task and recorder.task is not None:
            try:
                recorder.task.mark_failed(status_reason="the run never reached its end")
            except Exception:  # noqa: BLE001, S110 - the registry may be gone at exit; nothing left to tell
                pass
