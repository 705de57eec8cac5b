"""``OutputModel``: the write side of ClearML's model semantics, thin over the registry and the upload engine.

The write path of one version, in the caller's thread: validate the arguments, read the model and its task
once (`Registry.write_context`: mutability, destination, object key), run the ``before_upload`` hooks, snapshot
the files, build the upload :class:`Job` once, then one transaction allocates the version number and inserts
the row with its journal, and the same job goes to the engine. The engine reports back through `_PluginHooks`,
an observer this module installs, which turns outcomes into ``after_upload`` / ``on_upload_error`` hook calls
with the :class:`ModelVersion` built here (never by re-reading the row).
"""

from __future__ import annotations

import fnmatch
import numbers
import os
import shutil
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from . import _plugins, _storage
from ._config import config_to_text, text_to_config
from ._errors import InvalidArgumentError, ModelyardError, PublishedModelError, UploadError
from ._jobs import Job, JobFile, fingerprint, new_staging_dir
from ._labels import validate_labels
from ._model import PACKAGE_TAG, Model, check_free_text, check_name, config_from_args
from ._rows import ModelRow, VersionRow, WriteContext
from ._settings import default_storage_uri, hostname
from ._task import Task, check_tags
from ._uploads import get_engine, install_observer, open_registry
from ._versions import ModelVersion

_PROVENANCE = "source file: "
_SNAPSHOT_MODES = ("auto", "link", "copy")


def _check_iteration(iteration: Any) -> int | None:
    if iteration is None:
        return None
    if isinstance(iteration, bool) or not isinstance(iteration, numbers.Integral):
        raise InvalidArgumentError(f"iteration must be an integer or None, got {iteration!r}")
    return int(iteration)


def _check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidArgumentError(f"metadata must be a mapping, got {type(metadata).__name__}")
    text = config_to_text(metadata)  # same JSON-safety rules as configs, checked in the foreground
    return dict(text_to_config(text))


class OutputModel(Model):
    """A model a task produces: create it, then call :meth:`update_weights` as training goes.

    Args:
        task: The task (default: the current task).
        config_text: The configuration as text.
        config_dict: The configuration as a mapping (stored as canonical JSON).
        label_enumeration: Label name to integer id.
        name: The model name (default: the task's name).
        tags: User tags.
        comment: A description.
        framework: The framework's name.
        base_model_id: Continue an existing model instead of creating one.

    Raises:
        ValueError: No task, both configs given, invalid config or labels, or a published base model.
    """

    _default_upload_uri: ClassVar[str | None] = None
    _class_lock: ClassVar[threading.Lock] = threading.Lock()
    _task_role: ClassVar[str] = "output"

    def __init__(self, task: Task | None = None, config_text: str | None = None,
                 config_dict: Mapping[str, Any] | None = None,
                 label_enumeration: Mapping[str, int] | None = None, name: str | None = None,
                 tags: Sequence[str] | None = None, comment: str | None = None, framework: str | None = None,
                 base_model_id: str | None = None) -> None:
        task = task if task is not None else Task.current_task()
        if task is None:
            raise InvalidArgumentError("OutputModel needs a task: pass task= or call Task.init() first")
        if not isinstance(task, Task):
            raise InvalidArgumentError(f"task must be a modelyard Task, got {type(task).__name__}")
        config = config_from_args(config_text, config_dict)
        labels = validate_labels(label_enumeration) if label_enumeration is not None else None
        tag_list = check_tags(tags)
        if name is not None:
            check_name(name, "name")
        check_free_text(comment, "comment")
        if framework is not None and not isinstance(framework, str):
            framework = getattr(framework, "name", None) or str(framework)
        check_free_text(framework, "framework")
        self._task = task
        self._registry = open_registry()  # resumes this machine's orphaned uploads, once per process
        if config is None or labels is None:
            inherited = task.models["input"]
            if inherited:
                if config is None:
                    config = inherited[0].config_text
                if labels is None:
                    labels = inherited[0].labels or None
        if base_model_id is not None:
            base = Model(base_model_id)
            if base.published:
                raise PublishedModelError(f"base model {base_model_id} is published; create a new model")
            self._id = base_model_id
            updates: dict[str, Any] = {}
            for key, value in (("config_text", config), ("labels", labels), ("name", name),
                               ("comment", comment), ("framework", framework)):
                if value is not None:
                    updates[key] = value
            if tags is not None:
                updates["tags"] = tag_list
            if updates:
                self._registry.update_model(self._id, require_unpublished=True, **updates)
        else:
            self._id = uuid.uuid4().hex
            self._registry.insert_model(
                id=self._id, task_id=task.id, project=task.project, name=name or task.name,
                comment=comment or "", framework=framework, config_text=config, labels=labels,
                tags=tag_list, system_tags=[], published=False, archived=False, base_model_id=None,
                upload_uri=None, version_count=0)
        self._registry.link_task_model(task.id, self._id, "output", None)

    # -- settable properties ------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The model name."""
        return str(self._row().name)

    @name.setter
    def name(self, value: str) -> None:
        if not isinstance(value, str) or not value or "\x00" in value:
            raise InvalidArgumentError(f"name must be a non-empty string without NUL, got {value!r}")
        self._registry.update_model(self._id, require_unpublished=True, name=value)

    @property
    def comment(self) -> str:
        """The model's comment / description."""
        return str(self._row().comment or "")

    @comment.setter
    def comment(self, value: str) -> None:
        check_free_text(value, "comment")
        self._registry.update_model(self._id, require_unpublished=True, comment=value)

    @property
    def tags(self) -> list[str]:
        """The user tags."""
        return list(self._row().tags or [])

    @tags.setter
    def tags(self, value: Sequence[str]) -> None:
        self._registry.update_model(self._id, require_unpublished=True, tags=check_tags(value))

    @property
    def task(self) -> str | None:
        """The id of the task that created the model."""
        return self._row().task_id or self._task.id

    def _before_read(self) -> None:
        get_engine().wait(model_id=self._id)

    # -- ClearML members ----------------------------------------------------------------------------

    def connect(self, task: Task, name: str | None = None) -> None:
        """Register this model as an output of ``task``."""
        if not isinstance(task, Task):
            raise InvalidArgumentError(f"connect() takes a Task, got {type(task).__name__}")
        self._registry.link_task_model(task.id, self._id, "output", name)

    def publish(self) -> None:
        """Wait for this model's pending uploads, then make it immutable (a no-op if already published).

        Raises:
            UploadError: One of its uploads failed; the model stays unpublished.
        """
        if self.published:
            return
        get_engine().wait(model_id=self._id)
        self._publish_now()  # no refusal of in-progress uploads: this process's own just settled

    @classmethod
    def set_default_upload_uri(cls, output_uri: str | None) -> None:
        """Set the destination every later upload uses when nothing more specific is set."""
        with cls._class_lock:
            OutputModel._default_upload_uri = (_storage.normalize_destination(output_uri)
                                               if output_uri else None)

    def set_upload_destination(self, uri: str) -> bool:
        """Set where this model's weights upload.

        Returns:
            ``True`` when the scheme is installed and the destination writable; ``False`` otherwise
            (the destination is then not changed).
        """
        self._check_mutable()
        try:
            destination = _storage.normalize_destination(uri)
        except ModelyardError:
            return False
        if not _storage.is_writable(destination):
            return False
        self._registry.update_model(self._id, upload_uri=destination)
        return True

    def update_design(self, config_text: str | None = None, config_dict: Mapping[str, Any] | None = None
                      ) -> bool:
        """Replace the model's configuration.

        Returns:
            ``True`` once stored.
        """
        config = config_from_args(config_text, config_dict)
        self._registry.update_model(self._id, require_unpublished=True, config_text=config)
        return True

    def update_labels(self, labels: Mapping[str, int]) -> None:
        """Replace the label enumeration (label name to integer id)."""
        self._registry.update_model(self._id, require_unpublished=True, labels=validate_labels(labels))

    @classmethod
    def wait_for_uploads(cls, timeout: float | None = None, max_num_uploads: int | None = None) -> bool:
        """Wait for this process's pending uploads.

        Args:
            timeout: Seconds to wait at most (``None``: until done).
            max_num_uploads: Wait only for the oldest this many pending uploads.

        Returns:
            ``True`` when all uploads waited for finished; ``False`` when the timeout passed first.

        Raises:
            UploadError: An upload waited for failed (naming the model, the file and the cause).
        """
        return get_engine().wait(timeout=timeout, max_num_uploads=max_num_uploads)

    # -- weights ------------------------------------------------------------------------------------

    def _check_mutable(self, row: ModelRow | WriteContext | None = None) -> None:
        row = row if row is not None else self._row()
        if row.published:
            raise PublishedModelError(f"model {self._id} ({row.name!r}) is published and can no longer "
                                      "change; create a new OutputModel")

    def _write_context(self) -> WriteContext:
        """Read the model and its task in one statement; refuse a published model (the only check up front).

        The version's own transaction re-checks ``published`` on the row it locks, at no extra cost.
        """
        ctx = self._registry.write_context(self._id, self._task.id)
        self._check_mutable(ctx)
        return ctx

    @staticmethod
    def _destination(upload_uri: str | None, ctx: WriteContext) -> str:
        if upload_uri is not None:
            return _storage.normalize_destination(upload_uri)
        for candidate in (ctx.upload_uri, ctx.task_output_uri, OutputModel._default_upload_uri,
                          os.environ.get("MODELYARD_DEFAULT_OUTPUT_URI")):
            if candidate:
                return _storage.normalize_destination(candidate)
        return _storage.normalize_destination(default_storage_uri())

    def update_weights(self, weights_filename: str | os.PathLike[str] | None = None,
                       upload_uri: str | None = None, target_filename: str | None = None,
                       auto_delete_file: bool = True, register_uri: str | None = None,
                       iteration: int | None = None, update_comment: bool = True, is_package: bool = False, *,
                       metadata: Mapping[str, Any] | None = None, version_tags: Sequence[str] | None = None,
                       snapshot: str = "auto") -> str:
        """Record a new weights version and upload it in the background; return its final URI at once.

        The arguments are those of :meth:`add_version`, which returns the recorded :class:`ModelVersion`
        instead of its URI.
        """
        return self.add_version(weights_filename, upload_uri, target_filename, auto_delete_file, register_uri,
                                iteration, update_comment, is_package, metadata=metadata,
                                version_tags=version_tags, snapshot=snapshot).uri

    def add_version(self, weights_filename: str | os.PathLike[str] | None = None,
                    upload_uri: str | None = None, target_filename: str | None = None,
                    auto_delete_file: bool = True, register_uri: str | None = None,
                    iteration: int | None = None, update_comment: bool = True, is_package: bool = False, *,
                    metadata: Mapping[str, Any] | None = None, version_tags: Sequence[str] | None = None,
                    snapshot: str = "auto") -> ModelVersion:
        """Record a new weights version and upload it in the background; return the version at once.

        Args:
            weights_filename: A local file (or a folder, stored as a package).
            upload_uri: The destination (remembered for later calls of this model).
            target_filename: The file name in storage (default: the local file's name).
            auto_delete_file: The file is ours: delete it once its upload is durable (never on failure).
            register_uri: Record weights already stored at this URI instead of uploading.
            iteration: The training iteration (0 is a real iteration).
            update_comment: Record the source file's base name as provenance in the comment.
            is_package: The file is a zip package (checked now, extracted safely when read).
            metadata: JSON-safe facts stored with the version (metric name and value, ...).
            version_tags: Tags of this version.
            snapshot: How the file is protected until uploaded: ``"auto"`` (a hardlink when the file is
                ours, else a reflink or copy), ``"link"`` (a hardlink: for frameworks that write new files
                and may delete old ones), or ``"copy"`` (a reflink or full copy).

        Returns:
            The version as recorded (``pending``; ``ready`` for ``register_uri``). Its ``uri`` is where the
            bytes will be once ready.

        Raises:
            ValueError: Both or neither of ``weights_filename``/``register_uri``, a missing file, an unsafe
                zip package, invalid arguments, or a published model.
        """
        ctx = self._write_context()
        if (weights_filename is None) == (register_uri is None):
            raise InvalidArgumentError("pass exactly one of weights_filename and register_uri")
        iteration = _check_iteration(iteration)
        meta = _check_metadata(metadata)
        vtags = check_tags(version_tags, "version_tags")
        if snapshot not in _SNAPSHOT_MODES:
            raise InvalidArgumentError(f"snapshot must be one of {_SNAPSHOT_MODES}, got {snapshot!r}")
        if target_filename is not None:
            _check_file_name(target_filename)
        if register_uri is not None:
            return self._register(ctx, register_uri, iteration=iteration, is_package=is_package, meta=meta,
                                  vtags=vtags)
        path = Path(os.fspath(weights_filename))  # type: ignore[arg-type]
        if path.is_dir():
            return self._add_package(ctx, weights_path=str(path), upload_uri=upload_uri,
                                     target_filename=target_filename, auto_delete_file=auto_delete_file,
                                     iteration=iteration, metadata=meta, version_tags=vtags, snapshot=snapshot)
        if not path.is_file():
            raise InvalidArgumentError(f"weights file {str(path)!r} does not exist or is not a regular file")
        if is_package:
            from ._packages import inspect_zip

            inspect_zip(path)  # unsafe archives are refused now, in the caller's thread
        file_name = target_filename or path.name
        return self._record(
            ctx, [(str(path), file_name)], file_name=file_name, package_format="zip" if is_package else None,
            upload_uri=upload_uri, auto_delete=auto_delete_file, iteration=iteration, meta=meta, vtags=vtags,
            snapshot=snapshot, provenance=path.name if update_comment else None)

    def update_weights_package(self, weights_filenames: Sequence[str] | None = None,
                               weights_path: str | None = None, upload_uri: str | None = None,
                               target_filename: str | None = None, auto_delete_file: bool = True,
                               iteration: int | None = None, *, metadata: Mapping[str, Any] | None = None,
                               version_tags: Sequence[str] | None = None, snapshot: str = "auto",
                               exclude: Sequence[str] | None = None) -> str:
        """Record a multi-file package version and upload it in the background; return its URI at once.

        The arguments are those of :meth:`add_package_version`, which returns the recorded
        :class:`ModelVersion` instead of its URI.
        """
        return self.add_package_version(weights_filenames, weights_path, upload_uri, target_filename,
                                        auto_delete_file, iteration, metadata=metadata,
                                        version_tags=version_tags, snapshot=snapshot, exclude=exclude).uri

    def add_package_version(self, weights_filenames: Sequence[str] | None = None,
                            weights_path: str | None = None, upload_uri: str | None = None,
                            target_filename: str | None = None, auto_delete_file: bool = True,
                            iteration: int | None = None, *, metadata: Mapping[str, Any] | None = None,
                            version_tags: Sequence[str] | None = None, snapshot: str = "auto",
                            exclude: Sequence[str] | None = None) -> ModelVersion:
        """Record a multi-file package version (relative paths kept) and upload it in the background.

        Args:
            weights_filenames: Files to store (by base name).
            weights_path: A folder whose files are stored with their relative paths.
            upload_uri: The destination.
            target_filename: The package folder's name in storage.
            auto_delete_file: The files are ours: delete them once the package is durable.
            iteration: The training iteration.
            metadata: JSON-safe facts stored with the version.
            version_tags: Tags of this version.
            snapshot: See :meth:`update_weights`.
            exclude: ``fnmatch`` patterns of package names (relative POSIX paths) to leave out, e.g.
                ``["optimizer.pt", "rng_state*.pth", "global_step*"]``; ``*`` also matches ``/``, so a
                folder's pattern covers its files. Left-out files are neither stored nor deleted.

        Returns:
            The version as recorded (``pending``); its ``uri`` is the folder the package will have.
        """
        return self._add_package(self._write_context(), weights_filenames, weights_path, upload_uri,
                                 target_filename, auto_delete_file, iteration, metadata=metadata,
                                 version_tags=version_tags, snapshot=snapshot, exclude=exclude)

    def _add_package(self, ctx: WriteContext, weights_filenames: Sequence[str] | None = None,
                     weights_path: str | None = None, upload_uri: str | None = None,
                     target_filename: str | None = None, auto_delete_file: bool = True,
                     iteration: int | None = None, *, metadata: Mapping[str, Any] | None = None,
                     version_tags: Sequence[str] | None = None, snapshot: str = "auto",
                     exclude: Sequence[str] | None = None) -> ModelVersion:
        from ._packages import collect_package_files

        iteration = _check_iteration(iteration)
        meta = _check_metadata(metadata)
        vtags = check_tags(version_tags, "version_tags")
        if snapshot not in _SNAPSHOT_MODES:
            raise InvalidArgumentError(f"snapshot must be one of {_SNAPSHOT_MODES}, got {snapshot!r}")
        files = collect_package_files(weights_filenames=weights_filenames, weights_path=weights_path)
        if exclude is not None:
            patterns = check_tags(exclude, "exclude")
            files = [(rel, p) for rel, p in files
                     if not any(fnmatch.fnmatchcase(rel, pattern) for pattern in patterns)]
        if not files:
            raise InvalidArgumentError("the package is empty: no files found to store")
        if target_filename is not None:
            _check_file_name(target_filename)
        name = target_filename or (Path(weights_path).name if weights_path else "package")
        return self._record(ctx, [(str(p), rel) for rel, p in files], file_name=name, package_format="dir",
                            upload_uri=upload_uri, auto_delete=auto_delete_file, iteration=iteration,
                            meta=meta, vtags=vtags, snapshot=snapshot, provenance=None)

    def _register(self, ctx: WriteContext, uri: str, *, iteration: int | None, is_package: bool,
                  meta: dict[str, Any], vtags: list[str]) -> ModelVersion:
        normalized = _storage.normalize_destination(uri)
        self._registry.record_destination(normalized)
        file_name = normalized.rstrip("/").rsplit("/", 1)[-1] or "weights"
        system_tags = ctx.system_tags or []
        model_fields = {"system_tags": [*system_tags, PACKAGE_TAG]} if is_package and PACKAGE_TAG not in \
            system_tags else {}
        row = self._registry.add_version(
            self._id, iteration=iteration, uri=normalized, file_name=file_name,
            package_format="zip" if is_package else None, size=None, sha256=None, state="ready",
            tags=vtags, meta={**meta, "registered": True}, pinned=False, job=None, owner=None, host=None,
            model_fields=model_fields)
        return ModelVersion.from_row(row)

    def _record(self, ctx: WriteContext, sources: list[tuple[str, str]], *, file_name: str,
                package_format: str | None, upload_uri: str | None, auto_delete: bool, iteration: int | None,
                meta: dict[str, Any], vtags: list[str], snapshot: str, provenance: str | None) -> ModelVersion:
        destination = self._destination(upload_uri, ctx)
        protocol, _ = _storage.split_uri(destination)
        _storage.filesystem(protocol)  # a missing fsspec implementation fails here, not in a worker
        _plugins.get_plugin_manager().before_upload(self, file_name, iteration, dict(meta))  # may veto by raising
        self._registry.record_destination(destination)  # a set lookup once this process recorded it
        engine = get_engine()
        staging = new_staging_dir()
        mode = snapshot if snapshot != "auto" else ("link" if auto_delete else "copy")
        job_files: list[JobFile] = []
        delete_after: list[JobFile] = []
        # The snapshot may be renamed into a local destination (no second copy) only when its inode is
        # ours: a private copy, or a link to a file the caller handed over (auto_delete_file=True).
        movable = True
        try:
            for i, (src, rel) in enumerate(sources):
                original_print = fingerprint(src)
                dest = os.path.join(staging, f"{i}")
                done = _storage.snapshot_file(src, dest, mode)
                movable = movable and (done in ("copy", "reflink") or (done == "link" and auto_delete))
                if done == "none":
                    # Cross-filesystem: read in place, guarded by the fingerprint taken now.
                    job_files.append(JobFile(source=src, name=rel, uri="", fingerprint=original_print))
                else:
                    job_files.append(JobFile(source=dest, name=rel, uri="",
                                             fingerprint=original_print if done == "link" else None))
                if auto_delete:
                    delete_after.append(JobFile(source=src, name=rel, uri="", fingerprint=original_print))
        except OSError as e:
            shutil.rmtree(staging, ignore_errors=True)
            raise InvalidArgumentError(f"cannot snapshot {sources[len(job_files)][0]!r}: {e}") from e
        # Built once: its journal goes into the version row, the object itself to the engine.
        job = Job(version_id=0, model_id=self._id, version=0, uri="", file_name=file_name, files=job_files,
                  package=package_format == "dir", move=movable, delete_after=delete_after, staging=staging,
                  registry_url=self._registry.url)

        def fields_for(number: int) -> dict[str, Any]:
            # Called inside the version's transaction with the number it allocated.
            job.version = number
            job.uri = _storage.object_uri(destination, project=ctx.project, task_name=ctx.task_name,
                                          task_id=self._task.id, model_id=self._id, version=number,
                                          file_name=file_name)
            if job.package:
                for f in job_files:
                    f.uri = _storage.member_uri(job.uri, f.name)
            else:
                job_files[0].uri = job.uri
            return {"uri": job.uri, "job": job.journal()}

        # Model changes ride in the version's own transaction: no extra round trip, never one without the other.
        model_fields: dict[str, Any] = {}
        if upload_uri is not None and destination != ctx.upload_uri:
            model_fields["upload_uri"] = destination  # remembered for this model's later calls
        if package_format is not None and PACKAGE_TAG not in (ctx.system_tags or []):
            model_fields["system_tags"] = [*(ctx.system_tags or []), PACKAGE_TAG]
        if provenance is not None:
            # Provenance replaces its own line, so the comment never grows with every call.
            lines = [line for line in (ctx.comment or "").splitlines() if not line.startswith(_PROVENANCE)]
            model_fields["comment"] = "\n".join([*lines, _PROVENANCE + provenance])
        try:
            row = self._registry.add_version(
                self._id, iteration=iteration, file_name=file_name, package_format=package_format, size=None,
                sha256=None, state="pending", tags=vtags, meta=meta, pinned=False, owner=engine.owner,
                host=hostname(), fields_for=fields_for, model_fields=model_fields)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        version = ModelVersion.from_row(row)
        job.version_id = row.id
        job.context = version
        engine.submit(job)
        return version


class _PluginHooks:
    """The upload engine's observer: turns settled jobs into plugin hook calls, in the worker thread."""

    def upload_ready(self, job: Job, uri: str, size: int, sha256: str) -> None:
        version = _settled(job, state="ready", uri=uri, size=size, sha256=sha256, error=None)
        _plugins.get_plugin_manager().after_upload(version)

    def upload_failed(self, job: Job, error: UploadError) -> None:
        version = _settled(job, state="failed", error=error.cause)
        _plugins.get_plugin_manager().on_upload_error(version, error)


def _settled(job: Job, **changes: Any) -> ModelVersion:
    """Describe a settled job's version from what is already known: the version recorded, or the journal row."""
    if isinstance(job.context, ModelVersion):
        return replace(job.context, **changes)
    if isinstance(job.context, VersionRow):  # resumed from the journal of a process that died
        return replace(ModelVersion.from_row(job.context), **changes)
    # Submitted without a context (tests): what the job itself knows; not a row, so not `from_row`.
    return replace(ModelVersion(version=job.version, iteration=None, uri=job.uri, file_name=job.file_name,
                                size=None, sha256=None, state="pending", error=None, created=0.0,
                                package_format="dir" if job.package else None, model_id=job.model_id),
                   **changes)


install_observer(_PluginHooks())


def _check_file_name(name: Any) -> None:
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name \
            or "\x00" in name:
        raise InvalidArgumentError(f"target_filename must be a plain file name, got {name!r}")
