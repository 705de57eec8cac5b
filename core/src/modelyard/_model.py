"""``Model``, ``InputModel`` and ``OutputModel``: ClearML's model semantics, thin over registry and engine."""

from __future__ import annotations

import fnmatch
import numbers
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from . import _plugins, _storage
from ._errors import (
    IntegrityError,
    InvalidArgumentError,
    ModelyardError,
    NotFoundError,
    PublishedModelError,
)
from ._formats import config_to_text, text_to_config, validate_config_text, validate_labels
from ._registry import Registry, get_registry
from ._settings import default_storage_uri
from ._task import Task, check_tags
from ._uploads import MANIFEST_NAME, Job, JobFile, fingerprint, get_engine, new_staging_dir

PACKAGE_TAG = "package"
ARCHIVED_TAG = "archived"
_PROVENANCE = "source file: "
_SNAPSHOT_MODES = ("auto", "link", "copy")


@dataclass(frozen=True)
class ModelVersion:
    """One immutable weights version of a model.

    Attributes:
        version: 1 for the first ``update_weights`` of a model, then 2, 3, ...
        iteration: The training iteration the caller gave (``None`` if none; 0 is a real iteration).
        uri: Where the bytes are (a folder for packages).
        file_name: The stored file's name (or the package's folder name).
        size: Bytes stored (``None`` until ready, or for registered URIs of unknown size).
        sha256: Hex digest of the bytes (of the manifest for packages).
        state: ``pending``, ``uploading``, ``ready`` or ``failed``.
        error: Why it failed.
        created: Creation time (seconds since the epoch).
        package_format: ``None`` for one file, ``"dir"`` for a folder package, ``"zip"`` for a zip package.
        tags: Version tags (integrations use ``best``/``last``).
        metadata: Caller-supplied metadata (metric names and values, framework details).
        pinned: Retention never removes a pinned version.
    """

    version: int
    iteration: int | None
    uri: str
    file_name: str
    size: int | None
    sha256: str | None
    state: str
    error: str | None
    created: float
    package_format: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    pinned: bool = False

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ModelVersion:
        """Build from a registry row."""
        return cls(version=row["version"], iteration=row["iteration"], uri=row["uri"],
                   file_name=row["file_name"], size=row["size"], sha256=row["sha256"], state=row["state"],
                   error=row["error"], created=row["created"], package_format=row["package_format"],
                   tags=list(row["tags"] or []), metadata=dict(row["meta"] or {}), pinned=bool(row["pinned"]))


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


class Model:
    """A read-only view of any model in the registry.

    Args:
        model_id: The model's id.

    Raises:
        ValueError: No model has that id.
    """

    def __init__(self, model_id: str) -> None:
        if not isinstance(model_id, str) or not model_id:
            raise InvalidArgumentError(f"model_id must be a non-empty string, got {model_id!r}")
        self._registry: Registry = get_registry()
        self._id = model_id
        self._registry.get_model(model_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self._id!r}, name={self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and other._id == self._id

    def __hash__(self) -> int:
        return hash(self._id)

    def _row(self) -> dict[str, Any]:
        return self._registry.get_model(self._id)

    # -- read properties ----------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The model id (32 hex characters)."""
        return self._id

    @property
    def name(self) -> str:
        """The model name."""
        return str(self._row()["name"])

    @property
    def project(self) -> str:
        """The project the model is filed under."""
        return str(self._row()["project"])

    @property
    def comment(self) -> str:
        """The model's comment / description."""
        return str(self._row()["comment"] or "")

    @property
    def tags(self) -> list[str]:
        """The user tags."""
        return list(self._row()["tags"] or [])

    @property
    def system_tags(self) -> list[str]:
        """Tags modelyard maintains (``package``, ``archived``)."""
        return list(self._row()["system_tags"] or [])

    @property
    def framework(self) -> str | None:
        """The framework name the model was recorded with."""
        return self._row()["framework"]

    @property
    def task(self) -> str | None:
        """The id of the task that created the model."""
        return self._row()["task_id"]

    @property
    def published(self) -> bool:
        """Whether the model is published (immutable)."""
        return bool(self._row()["published"])

    @property
    def archived(self) -> bool:
        """Whether the model is archived (hidden from queries by default)."""
        return bool(self._row()["archived"])

    @property
    def config_text(self) -> str | None:
        """The configuration text."""
        return self._row()["config_text"]

    @property
    def config_dict(self) -> dict[str, Any]:
        """The configuration parsed as JSON, else YAML (a mapping).

        Raises:
            ConfigError: The stored text is neither (it is kept verbatim in ``config_text``).
        """
        text = self.config_text
        return {} if text is None else text_to_config(text)

    @property
    def labels(self) -> dict[str, int]:
        """The label enumeration (label name to integer id)."""
        return dict(self._row()["labels"] or {})

    @property
    def url(self) -> str | None:
        """The URI of the newest ``ready`` version (``None`` before any)."""
        row = self._registry.latest_ready_version(self._id)
        return row["uri"] if row else None

    @property
    def versions(self) -> list[ModelVersion]:
        """Every weights version, oldest first."""
        return [ModelVersion.from_row(r) for r in self._registry.model_versions(self._id)]

    def get_version(self, version: int | None = None) -> ModelVersion:
        """Return one version (default: the newest ``ready`` one).

        Raises:
            ValueError: No such version (or no ready version).
        """
        if version is None:
            row = self._registry.latest_ready_version(self._id)
            if row is None:
                raise NotFoundError(f"model {self._id} ({self.name!r}) has no ready weights version yet")
            return ModelVersion.from_row(row)
        return ModelVersion.from_row(self._version_row(version))

    def _version_row(self, version: int) -> dict[str, Any]:
        for row in self._registry.model_versions(self._id):
            if row["version"] == version:
                return row
        raise NotFoundError(f"model {self._id} has no version {version!r}")

    # -- read weights -------------------------------------------------------------------------------

    def _before_read(self) -> None:
        """Hook for OutputModel: wait for this process's uploads of the model first."""

    def get_weights(self, raise_on_error: bool = False, *, version: int | None = None) -> str | None:
        """Download the weights into the cache, verify size and sha256, and return the local path.

        Args:
            raise_on_error: Raise ``ValueError`` on failure instead of returning ``None``.
            version: A specific version (default: the newest ready one).

        Returns:
            A file path, or a folder path for a package version; ``None`` on failure.
        """
        try:
            self._before_read()
            return str(self._fetch(self._ready_row(version)))
        except (ModelyardError, OSError) as e:
            if raise_on_error:
                raise _as_value_error(e, f"cannot get the weights of model {self._id}") from e
            return None

    def get_weights_package(self, return_path: bool = False, raise_on_error: bool = False, *,
                            version: int | None = None) -> str | list[Path] | None:
        """Materialise a package version in a fresh folder.

        Args:
            return_path: Return the folder path instead of the list of files.
            raise_on_error: Raise ``ValueError`` on failure instead of returning ``None``.
            version: A specific version (default: the newest ready one).

        Returns:
            The folder, or the sorted list of file paths in it; ``None`` on failure.
        """
        try:
            self._before_read()
            row = self._ready_row(version)
            if not row["package_format"]:
                raise InvalidArgumentError(f"model {self._id} version {row['version']} is a single file, "
                                           "not a package; use get_weights()")
            fresh = Path(tempfile.mkdtemp(prefix="modelyard-package-"))
            target = fresh / _storage.safe_component(row["file_name"], limit=200)
            source = self._fetch(row)
            if row["package_format"] == "zip":
                from ._packages import safe_extract_zip

                safe_extract_zip(source, target)
            else:
                _storage.copy_tree(source, target)
            if return_path:
                return str(target)
            return sorted(p for p in target.rglob("*") if p.is_file())
        except (ModelyardError, OSError) as e:
            if raise_on_error:
                raise _as_value_error(e, f"cannot get the weights package of model {self._id}") from e
            return None

    def get_local_copy(self, extract_archive: bool | None = None, raise_on_error: bool = False) -> str | None:
        """Return a verified local copy of the newest weights; zip packages are extracted unless told not to.

        Args:
            extract_archive: Extract a zip package into a fresh folder (default: yes for packages).
            raise_on_error: Raise ``ValueError`` on failure instead of returning ``None``.
        """
        try:
            self._before_read()
            row = self._ready_row(None)
            if row["package_format"] == "zip" and extract_archive is not False:
                result = self.get_weights_package(return_path=True, raise_on_error=True)
                return str(result)
            return str(self._fetch(row))
        except (ModelyardError, OSError) as e:
            if raise_on_error:
                raise _as_value_error(e, f"cannot get a local copy of model {self._id}") from e
            return None

    def _ready_row(self, version: int | None) -> dict[str, Any]:
        if version is None:
            row = self._registry.latest_ready_version(self._id)
            if row is None:
                raise NotFoundError(f"model {self._id} ({self.name!r}) has no ready weights version yet")
            return row
        row = self._version_row(version)
        if row["state"] != "ready":
            raise NotFoundError(f"model {self._id} version {version} is {row['state']}, not ready"
                                + (f": {row['error']}" if row["error"] else ""))
        return row

    def _fetch(self, row: Mapping[str, Any]) -> Path:
        """Download a ready version into the cache (verified) and return the file or folder."""
        uri = row["uri"]
        _storage.check_confined(uri, self._registry.destinations())
        if row["package_format"] == "dir":
            return _fetch_package(uri, row["sha256"])
        return _storage.cached_download(uri, file_name=row["file_name"], size=row["size"],
                                        sha256=row["sha256"], on_first_hash=self._first_hash_recorder(row))

    def _first_hash_recorder(self, row: Mapping[str, Any]) -> Callable[[int, str], None] | None:
        """Return what records the size and sha256 of a registered URI on its first download (TOFU)."""
        if row["sha256"] is not None:
            return None
        version_id = row["id"]
        return lambda size, sha256: self._registry.record_first_hash(version_id, size, sha256)

    # -- archive and remove -------------------------------------------------------------------------

    def archive(self) -> None:
        """Hide the model from queries (``include_archived=True`` still finds it)."""
        tags = [t for t in self.system_tags if t != ARCHIVED_TAG] + [ARCHIVED_TAG]
        self._registry.update_model(self._id, archived=True, system_tags=tags)

    def unarchive(self) -> None:
        """Undo :meth:`archive`."""
        tags = [t for t in self.system_tags if t != ARCHIVED_TAG]
        self._registry.update_model(self._id, archived=False, system_tags=tags)

    def set_version_tags(self, version: int, *, add: Iterable[str] = (), remove: Iterable[str] = (),
                         exclusive: bool = False) -> None:
        """Add or remove tags on one version.

        Args:
            version: The version number.
            add: Tags to add.
            remove: Tags to remove.
            exclusive: Remove the added tags from every other version of this model (``best``, ``last``).
        """
        add_list = check_tags(add, "add")
        remove_set = set(check_tags(remove, "remove"))
        for row in self._registry.model_versions(self._id):
            tags = list(row["tags"] or [])
            if row["version"] == version:
                new = [t for t in tags if t not in remove_set] + [t for t in add_list if t not in tags]
            elif exclusive:
                new = [t for t in tags if t not in add_list]
            else:
                continue
            if new != tags:
                self._registry.update_version(row["id"], tags=new)

    def pin_version(self, version: int, pinned: bool = True) -> None:
        """Protect a version from retention (or release it)."""
        self._registry.update_version(self._version_row(version)["id"], pinned=bool(pinned))

    def remove_version(self, version: int, *, delete_weights_file: bool = True, force: bool = False) -> bool:
        """Remove one version; its object is deleted unless another version still uses it.

        Args:
            version: The version number.
            delete_weights_file: Delete the stored object too.
            force: Remove even a pinned version or one of a published model.

        Returns:
            ``True`` when the version was removed, ``False`` when it is protected (pinned or published).
        """
        row = self._version_row(version)
        if not force and (row["pinned"] or self.published):
            return False
        if row["state"] in ("pending", "uploading"):
            get_engine().wait(model_id=self._id)
            row = self._version_row(version)
        if delete_weights_file and row["state"] != "failed":
            _delete_object_if_unused(self._registry, row)
        self._registry.delete_version(row["id"])
        return True

    # -- queries ------------------------------------------------------------------------------------

    @classmethod
    def query_models(cls, project_name: str | None = None, model_name: str | None = None,
                     tags: Sequence[str] | None = None, only_published: bool = False,
                     include_archived: bool = False, max_results: int | None = None) -> list[Model]:
        """Return the models matching every filter, newest first.

        Args:
            project_name: Exact project name.
            model_name: Exact model name.
            tags: Every listed tag must be present; ``"-tag"`` excludes models with ``tag``.
            only_published: Only published models.
            include_archived: Include archived models.
            max_results: At most this many.
        """
        if max_results is not None and (isinstance(max_results, bool) or not isinstance(max_results, int)
                                        or max_results < 0):
            raise InvalidArgumentError(f"max_results must be a non-negative integer, got {max_results!r}")
        rows = get_registry().query_models(project=project_name, name=model_name,
                                           tags=check_tags(tags), only_published=only_published,
                                           include_archived=include_archived, max_results=max_results)
        models: list[Model] = []
        for row in rows:
            m = Model.__new__(Model)
            m._registry, m._id = get_registry(), row["id"]
            models.append(m)
        return models

    @classmethod
    def remove(cls, model: Model | str, delete_weights_file: bool = True, force: bool = False,
               raise_on_errors: bool = False) -> bool:
        """Remove a model, its versions and (unless told not to) their stored objects.

        Args:
            model: The model or its id.
            delete_weights_file: Delete the stored objects too.
            force: Remove even a published model.
            raise_on_errors: Raise instead of returning ``False`` on failure.

        Returns:
            ``True`` when the model was removed.
        """
        try:
            target = model if isinstance(model, Model) else Model(model)
            registry = target._registry
            row = target._row()
            if row["published"] and not force:
                raise PublishedModelError(f"model {target.id} is published; pass force=True to remove it")
            get_engine().wait(model_id=target.id)
            if delete_weights_file:
                ready = [v for v in registry.model_versions(target.id) if v["state"] == "ready"]
                destinations = registry.destinations()
                for version in ready:
                    # One row pointing outside the destinations refuses the whole removal before any delete.
                    _storage.check_confined(version["uri"], destinations)
                for version in ready:
                    _delete_object_if_unused(registry, version, removing_model=target.id)
            registry.delete_model(target.id)
            return True
        except (ModelyardError, OSError):
            if raise_on_errors:
                raise
            return False


def _delete_object_if_unused(registry: Registry, row: Mapping[str, Any], removing_model: str | None = None
                             ) -> None:
    """Delete a version's object unless another version still references it (deduplication)."""
    uri = row["uri"]
    users = [r for r in registry.uri_users(uri) if r["id"] != row["id"]
             and (removing_model is None or r["model_id"] != removing_model)]
    if users:
        return
    destinations = registry.destinations()
    _storage.check_confined(uri, destinations)
    if _storage.owning_model(uri, destinations) != row["model_id"]:
        # A registered URI is someone else's object, and a row changed to point at a destination's root or
        # at another model's folder must not widen a delete: forget the row, never delete the object.
        return
    _storage.delete_uri(uri)


def _fetch_package(uri: str, manifest_sha: str | None) -> Path:
    """Download a folder package into the cache, verifying the manifest and every file."""
    from filelock import FileLock

    from ._packages import Manifest

    if manifest_sha is None:
        # Packages become ready only with their manifest's sha256: without it nothing could be verified.
        raise IntegrityError(f"no sha256 is recorded for the manifest of the package at {uri}; the registry "
                             "row may be corrupt")
    _storage.check_digest(manifest_sha)
    folder = _storage.cache_root() / manifest_sha[:2] / manifest_sha
    done = folder / "package"
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if done.is_dir():
            return done
        # Manifest and members go to a scratch folder; only a complete, verified package is moved into place.
        scratch = Path(tempfile.mkdtemp(dir=folder, prefix=".partial-"))
        try:
            manifest_path = scratch / MANIFEST_NAME
            _storage.download_verified(f"{uri.rstrip('/')}/{MANIFEST_NAME}", manifest_path, size=None,
                                       sha256=manifest_sha)
            manifest = Manifest.from_json(manifest_path.read_text(encoding="utf-8"))
            staging = scratch / "package"
            staging.mkdir()
            for entry in manifest.entries:
                target = staging.joinpath(*entry.path.split("/"))
                _storage.download_verified(f"{uri.rstrip('/')}/{_storage.package_key(entry.path)}", target,
                                           size=entry.size, sha256=entry.sha256)
            os.replace(staging, done)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return done


def _as_value_error(exc: BaseException, context: str) -> ValueError:
    if isinstance(exc, ValueError):
        return exc
    error = InvalidArgumentError(f"{context}: {exc}")
    return error


class InputModel(Model):
    """A model a task consumes: by id, or the newest model matching name, project and tags.

    Args:
        model_id: The model id.
        name: The model name (used when no id is given).
        project: The project (used when no id is given).
        tags: Tags the model must carry (used when no id is given).
        only_published: Only consider published models.

    Raises:
        ValueError: No model matches.
    """

    def __init__(self, model_id: str | None = None, name: str | None = None, project: str | None = None,
                 tags: Sequence[str] | None = None, only_published: bool = False) -> None:
        if model_id is None:
            found = Model.query_models(project_name=project, model_name=name, tags=tags,
                                       only_published=only_published, max_results=1)
            if not found:
                raise NotFoundError(f"no model matches name={name!r}, project={project!r}, tags={tags!r}, "
                                    f"only_published={only_published}")
            model_id = found[0].id
        super().__init__(model_id)

    def connect(self, task: Task, name: str | None = None) -> None:
        """Record that ``task`` uses this model as an input."""
        if not isinstance(task, Task):
            raise InvalidArgumentError(f"connect() takes a Task, got {type(task).__name__}")
        self._registry.link_task_model(task.id, self._id, "input", name)

    @classmethod
    def import_model(cls, weights_url: str, config_text: str | None = None,
                     config_dict: Mapping[str, Any] | None = None,
                     label_enumeration: Mapping[str, int] | None = None, name: str | None = None,
                     project: str | None = None, tags: Sequence[str] | None = None, comment: str | None = None,
                     is_package: bool = False, create_as_published: bool = False,
                     framework: str | None = None) -> InputModel:
        """Register weights that already live at a URI as a new model (nothing is copied).

        The URI becomes an allowed read location of this registry. Its size is recorded when it can be
        read now; its sha256 is recorded on first download and verified from then on.

        Returns:
            The imported model.
        """
        if not isinstance(weights_url, str) or not weights_url.strip():
            raise InvalidArgumentError(f"weights_url must be a non-empty string, got {weights_url!r}")
        config = _config_from_args(config_text, config_dict)
        labels = validate_labels(label_enumeration) if label_enumeration is not None else None
        if name is not None:
            _check_name(name, "name")
        if project is not None:
            _check_name(project, "project")
        _check_free_text(comment, "comment")
        _check_free_text(framework, "framework")
        uri = _storage.normalize_destination(weights_url)
        registry = get_registry()
        model_id = uuid.uuid4().hex
        file_name = uri.rstrip("/").rsplit("/", 1)[-1] or "weights"
        registry.insert_model(id=model_id, task_id=None, project=project or "default",
                              name=name if name is not None else file_name, comment=comment or "",
                              framework=framework, config_text=config, labels=labels, tags=check_tags(tags),
                              system_tags=[PACKAGE_TAG] if is_package else [], published=False,
                              archived=False, version_count=0)
        registry.record_destination(uri)
        size = None
        try:
            size = _storage.object_size(uri)
        except (ModelyardError, OSError):
            size = None  # unreachable now (credentials, network): recorded on first download instead
        registry.add_version(model_id, iteration=None, uri=uri, file_name=file_name,
                             package_format="zip" if is_package else None, size=size, sha256=None,
                             state="ready", tags=[], meta={"registered": True}, pinned=False, job=None,
                             owner=None, host=None)
        if create_as_published:
            registry.update_model(model_id, published=True)
        return cls(model_id)


def _config_from_args(config_text: Any, config_dict: Any) -> str | None:
    if config_text is not None and config_dict is not None:
        raise InvalidArgumentError("pass config_text or config_dict, not both")
    if config_dict is not None:
        return config_to_text(config_dict)
    if config_text is not None:
        return validate_config_text(config_text)
    return None


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
        config = _config_from_args(config_text, config_dict)
        labels = validate_labels(label_enumeration) if label_enumeration is not None else None
        tag_list = check_tags(tags)
        if name is not None:
            _check_name(name, "name")
        _check_free_text(comment, "comment")
        if framework is not None and not isinstance(framework, str):
            framework = getattr(framework, "name", None) or str(framework)
        _check_free_text(framework, "framework")
        self._task = task
        self._registry = get_registry()
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
        return str(self._row()["name"])

    @name.setter
    def name(self, value: str) -> None:
        if not isinstance(value, str) or not value or "\x00" in value:
            raise InvalidArgumentError(f"name must be a non-empty string without NUL, got {value!r}")
        self._registry.update_model(self._id, require_unpublished=True, name=value)

    @property
    def comment(self) -> str:
        """The model's comment / description."""
        return str(self._row()["comment"] or "")

    @comment.setter
    def comment(self, value: str) -> None:
        _check_free_text(value, "comment")
        self._registry.update_model(self._id, require_unpublished=True, comment=value)

    @property
    def tags(self) -> list[str]:
        """The user tags."""
        return list(self._row()["tags"] or [])

    @tags.setter
    def tags(self, value: Sequence[str]) -> None:
        self._registry.update_model(self._id, require_unpublished=True, tags=check_tags(value))

    @property
    def task(self) -> str | None:
        """The id of the task that created the model."""
        return self._row()["task_id"] or self._task.id

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
        self._registry.update_model(self._id, published=True)
        _plugins.call("modelyard_after_publish", model=self)

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
        self._check_mutable()
        config = _config_from_args(config_text, config_dict)
        self._registry.update_model(self._id, require_unpublished=True, config_text=config)
        return True

    def update_labels(self, labels: Mapping[str, int]) -> None:
        """Replace the label enumeration (label name to integer id)."""
        self._check_mutable()
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

    def _check_mutable(self) -> dict[str, Any]:
        row = self._row()
        if row["published"]:
            raise PublishedModelError(f"model {self._id} ({row['name']!r}) is published and can no longer "
                                      "change; create a new OutputModel")
        return row

    def _destination(self, upload_uri: str | None, row: Mapping[str, Any], task_row: Mapping[str, Any]) -> str:
        if upload_uri is not None:
            destination = _storage.normalize_destination(upload_uri)
            if destination != row["upload_uri"]:
                self._registry.update_model(self._id, upload_uri=destination)
            return destination
        for candidate in (row["upload_uri"], task_row["output_uri"], OutputModel._default_upload_uri,
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
            The URI the version will have once ready.

        Raises:
            ValueError: Both or neither of ``weights_filename``/``register_uri``, a missing file, an unsafe
                zip package, invalid arguments, or a published model.
        """
        self._check_mutable()
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
            return self._register(register_uri, iteration=iteration, is_package=is_package, meta=meta,
                                  vtags=vtags)
        path = Path(os.fspath(weights_filename))  # type: ignore[arg-type]
        if path.is_dir():
            return self.update_weights_package(weights_path=str(path), upload_uri=upload_uri,
                                               target_filename=target_filename,
                                               auto_delete_file=auto_delete_file, iteration=iteration,
                                               metadata=meta, version_tags=vtags, snapshot=snapshot)
        if not path.is_file():
            raise InvalidArgumentError(f"weights file {str(path)!r} does not exist or is not a regular file")
        if is_package:
            from ._packages import inspect_zip

            inspect_zip(path)  # unsafe archives are refused now, in the caller's thread
        file_name = target_filename or path.name
        return self._record(
            [(str(path), file_name)], file_name=file_name, package_format="zip" if is_package else None,
            upload_uri=upload_uri, auto_delete=auto_delete_file, iteration=iteration, meta=meta, vtags=vtags,
            snapshot=snapshot, provenance=path.name if update_comment else None)

    def update_weights_package(self, weights_filenames: Sequence[str] | None = None,
                               weights_path: str | None = None, upload_uri: str | None = None,
                               target_filename: str | None = None, auto_delete_file: bool = True,
                               iteration: int | None = None, *, metadata: Mapping[str, Any] | None = None,
                               version_tags: Sequence[str] | None = None, snapshot: str = "auto",
                               exclude: Sequence[str] | None = None) -> str:
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
            The URI (a folder) the package will have once ready.
        """
        from ._packages import collect_package_files

        self._check_mutable()
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
        result = self._record([(str(p), rel) for rel, p in files], file_name=name, package_format="dir",
                              upload_uri=upload_uri, auto_delete=auto_delete_file, iteration=iteration,
                              meta=meta, vtags=vtags, snapshot=snapshot, provenance=None)
        if PACKAGE_TAG not in self.system_tags:
            self._registry.update_model(self._id, system_tags=[*self.system_tags, PACKAGE_TAG])
        return result

    def _register(self, uri: str, *, iteration: int | None, is_package: bool, meta: dict[str, Any],
                  vtags: list[str]) -> str:
        normalized = _storage.normalize_destination(uri)
        self._registry.record_destination(normalized)
        file_name = normalized.rstrip("/").rsplit("/", 1)[-1] or "weights"
        self._registry.add_version(
            self._id, iteration=iteration, uri=normalized, file_name=file_name,
            package_format="zip" if is_package else None, size=None, sha256=None, state="ready",
            tags=vtags, meta={**meta, "registered": True}, pinned=False, job=None, owner=None, host=None)
        return normalized

    def _record(self, sources: list[tuple[str, str]], *, file_name: str, package_format: str | None,
                upload_uri: str | None, auto_delete: bool, iteration: int | None, meta: dict[str, Any],
                vtags: list[str], snapshot: str, provenance: str | None) -> str:
        row = self._check_mutable()
        task_row = self._registry.get_task(self._task.id)
        destination = self._destination(upload_uri, row, task_row)
        protocol, _ = _storage.split_uri(destination)
        _storage.filesystem(protocol)  # a missing fsspec implementation fails here, not in a worker
        _plugins.call("modelyard_before_version_upload", model=self, file_name=file_name,
                      iteration=iteration, metadata=meta)
        self._registry.record_destination(destination)
        engine = get_engine()
        engine.resume(self._registry)
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
        def fields_for(number: int) -> dict[str, Any]:
            uri = _storage.object_uri(destination, project=row["project"], task_name=task_row["name"],
                                      task_id=task_row["id"], model_id=self._id, version=number,
                                      file_name=file_name)
            if package_format == "dir":
                for f in job_files:
                    f.uri = f"{uri}/{_storage.package_key(f.name)}"
            else:
                job_files[0].uri = uri
            job = Job(version_id=0, model_id=self._id, version=number, uri=uri, file_name=file_name,
                      files=job_files, package=package_format == "dir",
                      move=movable, delete_after=delete_after,
                      staging=staging, registry_url=self._registry.url)
            return {"uri": uri, "job": _json_obj(job)}

        model_fields = {}
        if provenance is not None:
            # Provenance replaces its own line, so the comment never grows with every call.
            lines = [line for line in (row["comment"] or "").splitlines() if not line.startswith(_PROVENANCE)]
            model_fields["comment"] = "\n".join([*lines, _PROVENANCE + provenance])
        try:
            version_row = self._registry.add_version(
                self._id, iteration=iteration, file_name=file_name, package_format=package_format, size=None,
                sha256=None, state="pending", tags=vtags, meta=meta, pinned=False, owner=engine.owner,
                host=_host(), fields_for=fields_for, model_fields=model_fields)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        job = Job.from_json(_json_text(version_row["job"]))
        job.version_id = version_row["id"]
        job.registry_url = self._registry.url
        engine.submit(job)
        return str(version_row["uri"])


def _json_obj(job: Job) -> Any:
    import json

    return json.loads(job.to_json())


def _json_text(obj: Any) -> str:
    import json

    return obj if isinstance(obj, str) else json.dumps(obj)


def _host() -> str:
    from ._settings import hostname

    return hostname()


def _check_name(value: Any, what: str) -> None:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise InvalidArgumentError(f"{what} must be a non-empty string without NUL, got {value!r}")


def _check_free_text(value: Any, what: str) -> None:
    # NUL is refused everywhere, not only where PostgreSQL would fail: a registry works the same on both.
    if value is not None and (not isinstance(value, str) or "\x00" in value):
        raise InvalidArgumentError(f"{what} must be a string without NUL characters, got {value!r}")


def _check_file_name(name: Any) -> None:
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name \
            or "\x00" in name:
        raise InvalidArgumentError(f"target_filename must be a plain file name, got {name!r}")
