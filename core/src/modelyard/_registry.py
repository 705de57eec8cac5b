"""The metadata store: transactions and queries on SQLAlchemy Core (SQLite and PostgreSQL).

The tables are in `modelyard._schema`, their creation and migration in `modelyard._migrations`, connections in
`modelyard._engine`. Every field read back from here is untrusted (RELIABILITY.md invariant 1): callers validate
URIs and names before they touch storage.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import _engine, _migrations
from ._errors import InvalidArgumentError, NotFoundError
from ._rows import (
    JSON_COLUMNS,
    UNSET,
    ModelRow,
    StoredObject,
    TaskLinkRow,
    TaskRow,
    Unset,
    VersionRow,
)
from ._schema import (
    ACTIVE_STATES,
    SCHEMA_VERSION,
    destinations,
    meta,
    metadata,
    model_tags,
    models,
    task_models,
    tasks,
    text_key,
    versions,
)
from ._settings import registry_url

__all__ = ["ACTIVE_STATES", "SCHEMA_VERSION", "UNSET", "ModelRow", "Registry", "StoredObject", "TaskLinkRow",
           "TaskRow", "VersionRow", "destinations", "dumps", "get_registry", "meta", "metadata", "model_tags",
           "models", "registry_url", "reset_registries", "task_models", "tasks", "text_key", "versions"]



def _with_keys(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Add the ``*_key`` digests of the ``project`` and ``name`` fields being written."""
    out = dict(fields)
    for column in ("project", "name"):
        if fields.get(column) is not None:
            out[f"{column}_key"] = text_key(fields[column])
    return out


def dumps(value: Any) -> str:
    """Serialise a JSON column value."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _given(**fields: Any) -> dict[str, Any]:
    """Keep the fields that were passed (not `UNSET`)."""
    return {k: v for k, v in fields.items() if v is not UNSET}


def _encode(fields: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: (dumps(v) if k in JSON_COLUMNS and v is not None else v) for k, v in fields.items()}
    for key, value in out.items():
        # PostgreSQL text cannot hold NUL; refuse it on every backend so both behave the same. JSON columns
        # never hold a raw NUL (json escapes it), and an error message is kept, escaped, rather than lost.
        if isinstance(value, str) and "\x00" in value:
            if key == "error":
                out[key] = value.replace("\x00", "\\x00")
            else:
                raise InvalidArgumentError(f"{key} must not contain NUL characters (\\x00); remove them")
    return out


class Registry:
    """A handle on one registry database. Safe to share between threads of one process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = _engine.is_sqlite(url)
        self.engine = _engine.make_engine(url)
        try:
            _migrations.ensure_schema(self.engine)
        except BaseException:
            self.engine.dispose()  # this handle is never cached: close its connections now
            raise

    # -- connections -------------------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """Open a write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success."""
        with _engine.write(self.engine) as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Open a read-only transaction."""
        with _engine.read(self.engine) as conn:
            yield conn

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def migrate(self) -> int:
        """Bring the schema to this release's revision; return the schema version it is at afterwards.

        Raises:
            RegistryError: A newer modelyard wrote the registry.
        """
        _migrations.upgrade_engine(self.engine)
        return SCHEMA_VERSION

    @property
    def safe_url(self) -> str:
        """The registry URL with any password hidden."""
        return _engine.safe_url(self.url)

    # -- tasks -------------------------------------------------------------------------------------

    def insert_task(self, *, id: str, project: str, name: str, status: str,
                    output_uri: str | None = None, tags: Sequence[str] = ()) -> None:
        """Store a new task row."""
        now = time.time()
        fields = {"id": id, "project": project, "name": name, "status": status, "output_uri": output_uri,
                  "tags": list(tags), "created": now, "updated": now}
        with self.write() as conn:
            conn.execute(sa.insert(tasks).values(**_encode(_with_keys(fields))))

    def update_task(self, task_id: str, *, status: str | Unset = UNSET,
                    output_uri: str | None | Unset = UNSET) -> None:
        """Change the given fields of a task row."""
        fields = _given(status=status, output_uri=output_uri)
        with self.write() as conn:
            conn.execute(sa.update(tasks).where(tasks.c.id == task_id)
                         .values(**_encode({"updated": time.time(), **fields})))

    def get_task(self, task_id: str) -> TaskRow:
        """Return a task row; `NotFoundError` when absent."""
        with self.read() as conn:
            row = conn.execute(sa.select(tasks).where(tasks.c.id == task_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"no task with id {task_id!r} in the registry {self.safe_url}")
        return TaskRow.from_mapping(row)

    def find_tasks(self, project: str | None = None, name: str | None = None,
                   limit: int | None = None) -> list[TaskRow]:
        """Return task rows, newest first."""
        query = sa.select(tasks).order_by(tasks.c.created.desc(), tasks.c.id)
        if project is not None:
            query = query.where((tasks.c.project_key == text_key(project)) & (tasks.c.project == project))
        if name is not None:
            query = query.where((tasks.c.name_key == text_key(name)) & (tasks.c.name == name))
        if limit is not None:
            query = query.limit(limit)
        with self.read() as conn:
            return [TaskRow.from_mapping(r) for r in conn.execute(query).mappings()]

    def link_task_model(self, task_id: str, model_id: str, role: str, name: str | None) -> None:
        """Record that a task uses (``input``) or produced (``output``) a model."""
        # One upsert: a delete-then-insert lets two writers under PostgreSQL's READ COMMITTED both find no row
        # and then collide on the primary key.
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            dialect_insert: Callable[..., Any] = sqlite_insert
        else:  # imported here: the PostgreSQL dialect costs ~35 ms at `import modelyard`
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            dialect_insert = postgresql_insert
        insert = dialect_insert(task_models).values(
            task_id=task_id, model_id=model_id, role=role, name=name, created=time.time())
        upsert = insert.on_conflict_do_update(
            index_elements=[task_models.c.task_id, task_models.c.model_id, task_models.c.role],
            set_={"name": insert.excluded.name, "created": insert.excluded.created})
        with self.write() as conn:
            conn.execute(upsert)

    def task_model_links(self, task_id: str) -> list[TaskLinkRow]:
        """Return the task's model links in the order they were made."""
        with self.read() as conn:
            rows = conn.execute(sa.select(task_models).where(task_models.c.task_id == task_id)
                                .order_by(task_models.c.created)).mappings()
            return [TaskLinkRow.from_mapping(r) for r in rows]

    # -- models ------------------------------------------------------------------------------------

    def insert_model(self, *, id: str, project: str, name: str,
                     task_id: str | None = None, comment: str = "", framework: str | None = None,
                     config_text: str | None = None, labels: Mapping[str, int] | None = None,
                     tags: Sequence[str] = (), system_tags: Sequence[str] = (), published: bool = False,
                     archived: bool = False, base_model_id: str | None = None, upload_uri: str | None = None,
                     version_count: int = 0) -> None:
        """Store a new model row and its tag index."""
        now = time.time()
        fields = {"id": id, "task_id": task_id, "project": project, "name": name, "comment": comment,
                  "framework": framework, "config_text": config_text,
                  "labels": dict(labels) if labels is not None else None, "tags": list(tags),
                  "system_tags": list(system_tags), "published": published, "archived": archived,
                  "base_model_id": base_model_id, "upload_uri": upload_uri, "version_count": version_count,
                  "created": now, "updated": now}
        with self.write() as conn:
            conn.execute(sa.insert(models).values(**_encode(_with_keys(fields))))
            self._write_tags(conn, id, fields["tags"], now)

    @staticmethod
    def _write_tags(conn: Connection, model_id: str, tags: Iterable[str], created: float | None = None) -> None:
        conn.execute(sa.delete(model_tags).where(model_tags.c.model_id == model_id))
        unique = list(dict.fromkeys(tags))
        if unique:
            if created is None:
                created = conn.execute(sa.select(models.c.created).where(models.c.id == model_id)).scalar_one()
            conn.execute(sa.insert(model_tags), [{"model_id": model_id, "tag_key": text_key(t), "tag": t,
                                                  "created": created} for t in unique])

    def update_model(self, model_id: str, *, require_unpublished: bool = False, name: str | Unset = UNSET,
                     comment: str | Unset = UNSET, framework: str | None | Unset = UNSET,
                     config_text: str | None | Unset = UNSET, labels: Mapping[str, int] | None | Unset = UNSET,
                     tags: Sequence[str] | Unset = UNSET, system_tags: Sequence[str] | Unset = UNSET,
                     published: bool | Unset = UNSET, archived: bool | Unset = UNSET,
                     upload_uri: str | None | Unset = UNSET) -> None:
        """Change the given fields of a model row (and its tag index when ``tags`` changes).

        Raises:
            NotFoundError: With ``require_unpublished``, the model is gone.
            PublishedModelError: With ``require_unpublished``, the model is published.
        """
        fields = _given(name=name, comment=comment, framework=framework, config_text=config_text, labels=labels,
                        tags=tags, system_tags=system_tags, published=published, archived=archived,
                        upload_uri=upload_uri)
        with self.write() as conn:
            if require_unpublished:
                # FOR UPDATE: under PostgreSQL's READ COMMITTED a publish could otherwise land between the
                # check and the write (SQLite's BEGIN IMMEDIATE already holds the write lock).
                row = conn.execute(sa.select(models.c.published).where(models.c.id == model_id)
                                   .with_for_update()).first()
                if row is None:
                    raise NotFoundError(f"no model with id {model_id!r}")
                if row[0]:
                    from ._errors import PublishedModelError

                    raise PublishedModelError(f"model {model_id} is published and can no longer change")
            conn.execute(sa.update(models).where(models.c.id == model_id)
                         .values(**_encode(_with_keys({"updated": time.time(), **fields}))))
            if "tags" in fields:
                self._write_tags(conn, model_id, fields["tags"] or [])

    def get_model(self, model_id: str) -> ModelRow:
        """Return a model row; `NotFoundError` when absent."""
        with self.read() as conn:
            row = conn.execute(sa.select(models).where(models.c.id == model_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"no model with id {model_id!r} in the registry {self.safe_url}")
        return ModelRow.from_mapping(row)

    def query_models(self, project: str | None = None, name: str | None = None,
                     tags: Sequence[str] | None = None, only_published: bool = False,
                     include_archived: bool = False, max_results: int | None = None) -> list[ModelRow]:
        """Return model rows matching every filter, newest first.

        A tag starting with ``-`` excludes models carrying that tag. With a required tag, the first one drives
        the query through ``model_tags``' (tag, created) index; the other filters are checked on the way.
        """
        query = sa.select(models)
        order = [models.c.created.desc(), models.c.id.desc()]
        required = [t for t in tags or () if not (t.startswith("-") and len(t) > 1)]
        if required:
            driver = model_tags.alias("driver")
            query = query.select_from(models.join(driver, driver.c.model_id == models.c.id)).where(
                (driver.c.tag_key == text_key(required[0])) & (driver.c.tag == required[0]))
            # The same order (driver.created is the model's), spelled so that the index provides it.
            order = [driver.c.created.desc(), driver.c.model_id.desc()]
        if project is not None:
            query = query.where((models.c.project_key == text_key(project)) & (models.c.project == project))
        if name is not None:
            query = query.where((models.c.name_key == text_key(name)) & (models.c.name == name))
        if only_published:
            query = query.where(models.c.published.is_(True))
        if not include_archived:
            query = query.where(models.c.archived.is_(False))
        for tag in [*required[1:], *(t for t in tags or () if t not in required)]:
            exclude = tag.startswith("-") and len(tag) > 1
            value = tag[1:] if exclude else tag
            sub = sa.select(model_tags.c.model_id).where(
                (model_tags.c.tag_key == text_key(value)) & (model_tags.c.tag == value)
                & (model_tags.c.model_id == models.c.id))
            query = query.where(~sa.exists(sub) if exclude else sa.exists(sub))
        query = query.order_by(*order)
        if max_results is not None:
            query = query.limit(max_results)
        with self.read() as conn:
            return [ModelRow.from_mapping(r) for r in conn.execute(query).mappings()]

    def delete_model(self, model_id: str) -> None:
        """Delete a model row with its versions, tags and task links."""
        with self.write() as conn:
            for table in (versions, model_tags):
                conn.execute(sa.delete(table).where(table.c.model_id == model_id))
            conn.execute(sa.delete(task_models).where(task_models.c.model_id == model_id))
            conn.execute(sa.delete(models).where(models.c.id == model_id))

    # -- versions ----------------------------------------------------------------------------------

    def add_version(self, model_id: str, *, file_name: str, state: str, uri: str | None = None,
                    iteration: int | None = None, package_format: str | None = None, size: int | None = None,
                    sha256: str | None = None, error: str | None = None, tags: Sequence[str] = (),
                    meta: Mapping[str, Any] | None = None, pinned: bool = False,
                    job: Mapping[str, Any] | None = None, owner: str | None = None, host: str | None = None,
                    require_unpublished: bool = True,
                    fields_for: Callable[[int], Mapping[str, Any]] | None = None,
                    model_fields: Mapping[str, Any] | None = None) -> VersionRow:
        """Allocate the model's next version number and store the version row in one transaction.

        Args:
            model_id: The model.
            file_name: The stored file's (or package folder's) name.
            state: ``pending`` for an upload, ``ready`` for a registered URI.
            uri: Where the bytes are, unless ``fields_for`` gives it.
            iteration: The training iteration (0 is a real one).
            package_format: ``None`` (one file), ``"dir"`` or ``"zip"``.
            size: Bytes, when known.
            sha256: Hex digest of the bytes, when known.
            error: Why it failed.
            tags: Version tags.
            meta: JSON-safe metadata.
            pinned: Protected from retention.
            job: The upload journal entry (what another process needs to finish the upload).
            owner: The uploading process (``host|pid|start``).
            host: The machine whose journal holds the upload.
            require_unpublished: Refuse a published model.
            fields_for: Receives the allocated number and returns ``uri`` and ``job``, which depend on it.
            model_fields: ``system_tags`` and ``comment`` of the model, changed in the same transaction.

        Returns:
            The version as stored.

        Raises:
            NotFoundError: No such model.
            PublishedModelError: The model is published (with ``require_unpublished``).
        """
        if model_fields and not model_fields.keys() <= {"system_tags", "comment"}:
            raise ValueError(f"add_version changes only system_tags and comment of a model, not {model_fields}")
        now = time.time()
        with self.write() as conn:
            # The UPDATE takes the row lock on PostgreSQL and the write lock on SQLite, so two writers can
            # never be handed the same number: under READ COMMITTED a second writer blocks on the row lock,
            # then re-evaluates ``version_count + 1`` on the committed row. RETURNING reads the number (and
            # ``published``, as of that same locked row) without another round trip.
            found = conn.execute(sa.update(models).where(models.c.id == model_id)
                                 .values(version_count=models.c.version_count + 1, updated=now,
                                         **_encode(_with_keys(model_fields or {})))
                                 .returning(models.c.version_count, models.c.published)).first()
            if found is None:
                raise NotFoundError(f"no model with id {model_id!r} in the registry {self.safe_url}")
            number, published = found
            if published and require_unpublished:
                from ._errors import PublishedModelError

                raise PublishedModelError(f"model {model_id} is published; its weights can no longer change")
            row = {"model_id": model_id, "version": number, "iteration": iteration, "uri": uri,
                   "file_name": file_name, "package_format": package_format, "size": size, "sha256": sha256,
                   "state": state, "error": error, "tags": list(tags), "meta": dict(meta or {}),
                   "pinned": pinned, "job": dict(job) if job is not None else None, "owner": owner, "host": host,
                   "created": now, "updated": now}
            if fields_for is not None:
                late = fields_for(number)
                if not late.keys() <= {"uri", "job"}:
                    raise ValueError(f"fields_for returns only uri and job, not {sorted(late)}")
                row.update(late)
            stored = conn.execute(sa.insert(versions).values(**_encode(row)).returning(versions)).mappings().one()
        return VersionRow.from_mapping(stored)

    def update_version(self, version_id: int, *, expect_owner: str | None = None, state: str | Unset = UNSET,
                       uri: str | Unset = UNSET, size: int | None | Unset = UNSET,
                       sha256: str | None | Unset = UNSET, error: str | None | Unset = UNSET,
                       tags: Sequence[str] | Unset = UNSET, meta: Mapping[str, Any] | Unset = UNSET,
                       pinned: bool | Unset = UNSET, job: Mapping[str, Any] | None | Unset = UNSET,
                       owner: str | None | Unset = UNSET) -> bool:
        """Change the given fields of a version row; with ``expect_owner``, only while that owner holds it.

        Returns:
            Whether the row was changed (``False``: it is gone, or another owner took it over).
        """
        fields = _given(state=state, uri=uri, size=size, sha256=sha256, error=error, tags=tags, meta=meta,
                        pinned=pinned, job=job, owner=owner)
        query = sa.update(versions).where(versions.c.id == version_id)
        if expect_owner is not None:
            query = query.where(versions.c.owner == expect_owner)
        with self.write() as conn:
            return conn.execute(query.values(**_encode({"updated": time.time(), **fields}))).rowcount == 1

    def record_first_hash(self, version_id: int, size: int, sha256: str) -> None:
        """Record the size and sha256 first seen for a version that had none (trust on first use).

        Versions of registered URIs are recorded without a hash; the first verified download fixes it, and
        every later download is checked against it.

        Raises:
            NotFoundError: The version row is gone.
            IntegrityError: Another size or sha256 is recorded for the version (the object changed between
                two first downloads, or its recorded size does not match).
        """
        condition = (versions.c.id == version_id) & versions.c.sha256.is_(None) & (
            versions.c.size.is_(None) | (versions.c.size == size))
        with self.write() as conn:
            conn.execute(sa.update(versions).where(condition)
                         .values(size=size, sha256=sha256, updated=time.time()))
            row = conn.execute(sa.select(versions.c.size, versions.c.sha256)
                               .where(versions.c.id == version_id)).first()
        if row is None:
            raise NotFoundError(f"no version row {version_id}")
        if (row[0], row[1]) != (size, sha256):
            from ._errors import IntegrityError

            raise IntegrityError(f"the object of version row {version_id} has {size} bytes with sha256 "
                                 f"{sha256}, but {row[0]} bytes with sha256 {row[1]} are recorded; it was "
                                 "changed or substituted")

    def get_version(self, version_id: int) -> VersionRow:
        """Return a version row by its row id."""
        with self.read() as conn:
            row = conn.execute(sa.select(versions).where(versions.c.id == version_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"no version row {version_id}")
        return VersionRow.from_mapping(row)

    def model_versions(self, model_id: str) -> list[VersionRow]:
        """Return a model's versions, oldest first."""
        query = sa.select(versions).where(versions.c.model_id == model_id).order_by(versions.c.version)
        with self.read() as conn:
            return [VersionRow.from_mapping(r) for r in conn.execute(query).mappings()]

    def latest_ready_version(self, model_id: str) -> VersionRow | None:
        """Return the newest ``ready`` version of a model, or ``None``."""
        query = (sa.select(versions).where((versions.c.model_id == model_id) & (versions.c.state == "ready"))
                 .order_by(versions.c.version.desc()).limit(1))
        with self.read() as conn:
            row = conn.execute(query).mappings().first()
        return VersionRow.from_mapping(row) if row else None

    def find_ready_by_hash(self, model_id: str, sha256: str, size: int) -> VersionRow | None:
        """Return a ready version of the model holding exactly these bytes (for deduplication)."""
        query = (sa.select(versions).where(
            (versions.c.model_id == model_id) & (versions.c.sha256 == sha256) & (versions.c.size == size)
            & (versions.c.state == "ready") & (versions.c.package_format.is_(None)))
            .order_by(versions.c.version).limit(1))
        with self.read() as conn:
            row = conn.execute(query).mappings().first()
        return VersionRow.from_mapping(row) if row else None

    def uri_users(self, uri: str) -> list[StoredObject]:
        """Return every version not ``failed`` that references an object URI."""
        query = sa.select(*_STORED_OBJECT).where((versions.c.uri == uri) & (versions.c.state != "failed"))
        with self.read() as conn:
            return [StoredObject.from_mapping(r) for r in conn.execute(query).mappings()]

    def delete_version(self, version_id: int) -> None:
        """Delete a version row."""
        with self.write() as conn:
            conn.execute(sa.delete(versions).where(versions.c.id == version_id))

    def active_versions(self, host: str) -> list[VersionRow]:
        """Return this host's journaled versions still ``pending`` or ``uploading``."""
        query = sa.select(versions).where(versions.c.state.in_(ACTIVE_STATES) & (versions.c.host == host))
        with self.read() as conn:
            return [VersionRow.from_mapping(r) for r in conn.execute(query.order_by(versions.c.id)).mappings()]

    def claim_version(self, version_id: int, old_owner: str | None, new_owner: str) -> bool:
        """Atomically take over a journaled version from a dead owner."""
        owner_match = versions.c.owner.is_(None) if old_owner is None else versions.c.owner == old_owner
        query = (sa.update(versions)
                 .where((versions.c.id == version_id) & owner_match & versions.c.state.in_(ACTIVE_STATES))
                 .values(owner=new_owner, state="pending", updated=time.time()))
        with self.write() as conn:
            return conn.execute(query).rowcount == 1

    def all_version_uris(self) -> list[StoredObject]:
        """Return what every version says about its stored object (not its journal or metadata: any scale)."""
        with self.read() as conn:
            return [StoredObject.from_mapping(r) for r in conn.execute(sa.select(*_STORED_OBJECT)).mappings()]

    # -- destinations --------------------------------------------------------------------------------

    def record_destination(self, uri: str) -> None:
        """Remember a destination root (or registered URI) this registry wrote to."""
        if uri in self._known_destinations:
            return
        try:
            with self.write() as conn:
                exists = conn.execute(sa.select(destinations.c.uri).where(destinations.c.uri == uri)).first()
                if exists is None:
                    conn.execute(sa.insert(destinations).values(uri=uri, created=time.time()))
        except sa.exc.IntegrityError:
            pass  # another writer recorded it at the same moment; it is there either way
        self._known_destinations.add(uri)

    def destinations(self) -> list[str]:
        """Return every destination this registry wrote to."""
        with self.read() as conn:
            return [r[0] for r in conn.execute(sa.select(destinations.c.uri))]

    @property
    def _known_destinations(self) -> set[str]:
        known: set[str] | None = getattr(self, "_known", None)
        if known is None:
            known = self._known = set()
        return known

    # -- write path --

    def write_context(self, model_id: str, task_id: str) -> dict[str, Any]:
        """Return, in one statement, what recording a version of a model under a task needs to know.

        Returns:
            The model's ``name``, ``project``, ``comment``, ``system_tags``, ``upload_uri`` and ``published``,
            with the task's ``task_name`` and ``task_output_uri``.

        Raises:
            NotFoundError: The model or the task is not in the registry.
        """
        query = (sa.select(models.c.name, models.c.project, models.c.comment, models.c.system_tags,
                           models.c.upload_uri, models.c.published, tasks.c.name.label("task_name"),
                           tasks.c.output_uri.label("task_output_uri"))
                 .select_from(models.join(tasks, tasks.c.id == task_id))
                 .where(models.c.id == model_id))
        with self.read() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            self.get_model(model_id)  # raises the NotFoundError naming what is missing
            self.get_task(task_id)
            raise NotFoundError(f"no model {model_id!r} with task {task_id!r} in the registry {self.safe_url}")
        return _decode(row)


#: The columns of a `StoredObject`.
_STORED_OBJECT = [versions.c[name] for name in StoredObject.__dataclass_fields__]

_lock = threading.Lock()
_registries: dict[tuple[int, str], Registry] = {}


def get_registry(url: str | None = None) -> Registry:
    """Return this process's registry handle for ``url`` (default: the configured registry)."""
    url = url or registry_url()
    key = (os.getpid(), url)
    with _lock:
        registry = _registries.get(key)
        if registry is None:
            # A forked child must not reuse its parent's pooled connections.
            for stale in [k for k in _registries if k[0] != os.getpid()]:
                del _registries[stale]
            registry = _registries[key] = Registry(url)
    return registry


def reset_registries() -> None:
    """Forget every cached registry handle (used between tests and after configuration changes)."""
    with _lock:
        for registry in _registries.values():
            registry.dispose()
        _registries.clear()
