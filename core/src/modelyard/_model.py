"""``Model`` and ``InputModel``: the read side of ClearML's model semantics, thin over registry and storage."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from . import _plugins, _storage
from ._config import config_to_text, text_to_config, validate_config_text
from ._errors import InvalidArgumentError, ModelyardError, NotFoundError, PublishedModelError
from ._labels import validate_labels
from ._registry import ACTIVE_STATES, Registry, get_registry
from ._rows import ModelRow, VersionRow
from ._task import Task, check_tags, install_model_class
from ._uploads import get_engine
from ._versions import ModelVersion, delete_object_if_unused

PACKAGE_TAG = "package"
ARCHIVED_TAG = "archived"


class Model:
    """A read-only view of any model in the registry.

    Args:
        model_id: The model's id.

    Raises:
        ValueError: No model has that id.
    """

    #: The role the model has when connected to a task (``Task.connect``).
    _task_role: ClassVar[str] = "input"

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

    def _row(self) -> ModelRow:
        return self._registry.get_model(self._id)

    # -- read properties ----------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The model id (32 hex characters)."""
        return self._id

    @property
    def name(self) -> str:
        """The model name."""
        return str(self._row().name)

    @property
    def project(self) -> str:
        """The project the model is filed under."""
        return str(self._row().project)

    @property
    def comment(self) -> str:
        """The model's comment / description."""
        return str(self._row().comment or "")

    @property
    def tags(self) -> list[str]:
        """The user tags."""
        return list(self._row().tags or [])

    @property
    def system_tags(self) -> list[str]:
        """Tags modelyard maintains (``package``, ``archived``)."""
        return list(self._row().system_tags or [])

    @property
    def framework(self) -> str | None:
        """The framework name the model was recorded with."""
        return self._row().framework

    @property
    def task(self) -> str | None:
        """The id of the task that created the model."""
        return self._row().task_id

    @property
    def published(self) -> bool:
        """Whether the model is published (immutable)."""
        return bool(self._row().published)

    @property
    def archived(self) -> bool:
        """Whether the model is archived (hidden from queries by default)."""
        return bool(self._row().archived)

    @property
    def config_text(self) -> str | None:
        """The configuration text."""
        return self._row().config_text

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
        return dict(self._row().labels or {})

    @property
    def url(self) -> str | None:
        """The URI of the newest ``ready`` version (``None`` before any)."""
        row = self._registry.latest_ready_version(self._id)
        return row.uri if row else None

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

    def _version_row(self, version: int) -> VersionRow:
        for row in self._registry.model_versions(self._id):
            if row.version == version:
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
            if not row.package_format:
                raise InvalidArgumentError(f"model {self._id} version {row.version} is a single file, "
                                           "not a package; use get_weights()")
            fresh = Path(tempfile.mkdtemp(prefix="modelyard-package-"))
            target = fresh / _storage.safe_component(row.file_name, limit=200)
            source = self._fetch(row)
            if row.package_format == "zip":
                from ._zip import safe_extract_zip

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
            if row.package_format == "zip" and extract_archive is not False:
                result = self.get_weights_package(return_path=True, raise_on_error=True)
                return str(result)
            return str(self._fetch(row))
        except (ModelyardError, OSError) as e:
            if raise_on_error:
                raise _as_value_error(e, f"cannot get a local copy of model {self._id}") from e
            return None

    def export_weights(self, out_dir: Path, *, version: int | None = None,
                       progress: Callable[[str, int | None], Callable[[int], None]] | None = None) -> Path:
        """Download a ready version into ``out_dir`` (not the cache), verified, and return the path written.

        A single file lands as ``out_dir/<file name>``; a package (a folder, or a zip package, extracted
        safely) as the folder ``out_dir/<package name>``. Nothing is left behind if verification fails.

        Args:
            out_dir: The folder to write into (created if missing).
            version: A specific version (default: the newest ready one).
            progress: Makes a progress callback per transfer (label, total bytes).

        Raises:
            NotFoundError: No such version, or it is not ready.
            IntegrityError: The downloaded bytes do not match the recorded size or sha256.
        """
        from ._export import export_version

        self._before_read()
        row = self._ready_row(version)
        return export_version(row, self._registry.destinations(), out_dir, progress,
                              on_first_hash=self._first_hash_recorder(row))

    def _ready_row(self, version: int | None) -> VersionRow:
        if version is None:
            row = self._registry.latest_ready_version(self._id)
            if row is None:
                raise NotFoundError(f"model {self._id} ({self.name!r}) has no ready weights version yet")
            return row
        row = self._version_row(version)
        if row.state != "ready":
            raise NotFoundError(f"model {self._id} version {version} is {row.state}, not ready"
                                + (f": {row.error}" if row.error else ""))
        return row

    def _fetch(self, row: VersionRow) -> Path:
        """Download a ready version into the cache (verified) and return the file or folder."""
        uri = row.uri
        _storage.check_confined(uri, self._registry.destinations())
        if row.package_format == "dir":
            return _storage.fetch_package(uri, row.sha256)
        return _storage.cached_download(uri, file_name=row.file_name, size=row.size,
                                        sha256=row.sha256, on_first_hash=self._first_hash_recorder(row))

    def _first_hash_recorder(self, row: VersionRow) -> Callable[[int, str], None] | None:
        """Return what records the size and sha256 of a registered URI on its first download (TOFU)."""
        if row.sha256 is not None:
            return None
        version_id = row.id
        return lambda size, sha256: self._registry.record_first_hash(version_id, size, sha256)

    # -- publish, archive and remove -----------------------------------------------------------------

    def publish(self) -> None:
        """Make the model immutable (a no-op if already published); a ``before_publish`` plugin may veto.

        Raises:
            InvalidArgumentError: An upload of the model is still in progress (in any process): wait for it,
                or run ``modelyard sync`` on the machine that started it.
        """
        if self.published:
            return
        active = [r for r in self._registry.model_versions(self._id) if r.state in ACTIVE_STATES]
        if active:
            raise InvalidArgumentError(
                f"model {self._id} has {len(active)} upload(s) in progress (version {active[0].version} is "
                f"{active[0].state}); wait for them, or run `modelyard sync` on the machine that started them")
        self._publish_now()

    def _publish_now(self) -> None:
        """Run the ``before_publish`` hooks (a plugin vetoes by raising), publish, run ``after_publish``."""
        plugins = _plugins.get_plugin_manager()
        plugins.before_publish(self)
        self._registry.update_model(self._id, published=True)
        plugins.after_publish(self)

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
            tags = list(row.tags or [])
            if row.version == version:
                new = [t for t in tags if t not in remove_set] + [t for t in add_list if t not in tags]
            elif exclusive:
                new = [t for t in tags if t not in add_list]
            else:
                continue
            if new != tags:
                self._registry.update_version(row.id, tags=new)

    def pin_version(self, version: int, pinned: bool = True) -> None:
        """Protect a version from retention (or release it)."""
        self._registry.update_version(self._version_row(version).id, pinned=bool(pinned))

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
        if not force and (row.pinned or self.published):
            return False
        if row.state in ("pending", "uploading"):
            get_engine().wait(model_id=self._id)
            row = self._version_row(version)
        if delete_weights_file and row.state != "failed":
            delete_object_if_unused(self._registry, row)
        self._registry.delete_version(row.id)
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
            m._registry, m._id = get_registry(), row.id
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
            if row.published and not force:
                raise PublishedModelError(f"model {target.id} is published; pass force=True to remove it")
            get_engine().wait(model_id=target.id)
            if delete_weights_file:
                ready = [v for v in registry.model_versions(target.id) if v.state == "ready"]
                destinations = registry.destinations()
                for version in ready:
                    # One row pointing outside the destinations refuses the whole removal before any delete.
                    _storage.check_confined(version.uri, destinations)
                for version in ready:
                    delete_object_if_unused(registry, version, removing_model=target.id)
            registry.delete_model(target.id)
            return True
        except (ModelyardError, OSError):
            if raise_on_errors:
                raise
            return False


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
        config = config_from_args(config_text, config_dict)
        labels = validate_labels(label_enumeration) if label_enumeration is not None else None
        if name is not None:
            check_name(name, "name")
        if project is not None:
            check_name(project, "project")
        check_free_text(comment, "comment")
        check_free_text(framework, "framework")
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


install_model_class(Model)


def config_from_args(config_text: Any, config_dict: Any) -> str | None:
    if config_text is not None and config_dict is not None:
        raise InvalidArgumentError("pass config_text or config_dict, not both")
    if config_dict is not None:
        return config_to_text(config_dict)
    if config_text is not None:
        return validate_config_text(config_text)
    return None


def check_name(value: Any, what: str) -> None:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise InvalidArgumentError(f"{what} must be a non-empty string without NUL, got {value!r}")


def check_free_text(value: Any, what: str) -> None:
    # NUL is refused everywhere, not only where PostgreSQL would fail: a registry works the same on both.
    if value is not None and (not isinstance(value, str) or "\x00" in value):
        raise InvalidArgumentError(f"{what} must be a string without NUL characters, got {value!r}")
