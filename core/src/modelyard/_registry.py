"""The metadata store: schema, transactions and queries on SQLAlchemy Core (SQLite and PostgreSQL).

Every field read back from here is untrusted (RELIABILITY.md invariant 1): callers validate URIs and names
before they touch storage. Writes on SQLite run in ``BEGIN IMMEDIATE`` transactions with a busy timeout,
because deferred transactions fail with "database is locked" as soon as a few processes write at once.

Names, projects and tags are free text of any length, but a PostgreSQL b-tree row holds at most ~2.7 kB, so they
are indexed through fixed-size digests (``*_key`` columns, see `text_key`) and compared in full.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ._errors import InvalidArgumentError, NotFoundError, RegistryError
from ._settings import registry_url

#: Bump when the schema changes, and add a step to ``_MIGRATIONS``.
SCHEMA_VERSION = 2

metadata = sa.MetaData()

meta = sa.Table(
    "modelyard_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("project", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("output_uri", sa.Text),
    sa.Column("tags", sa.Text, nullable=False, default="[]"),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
    sa.Column("project_key", sa.String(32)),
    sa.Column("name_key", sa.String(32)),
    sa.Index("ix_tasks_project_name_key", "project_key", "name_key", "created"),
)

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("task_id", sa.String(32)),
    sa.Column("project", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("comment", sa.Text, nullable=False, default=""),
    sa.Column("framework", sa.Text),
    sa.Column("config_text", sa.Text),
    sa.Column("labels", sa.Text),
    sa.Column("tags", sa.Text, nullable=False, default="[]"),
    sa.Column("system_tags", sa.Text, nullable=False, default="[]"),
    sa.Column("published", sa.Boolean, nullable=False, default=False),
    sa.Column("archived", sa.Boolean, nullable=False, default=False),
    sa.Column("base_model_id", sa.String(32)),
    sa.Column("upload_uri", sa.Text),
    sa.Column("version_count", sa.Integer, nullable=False, default=0),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
    sa.Column("project_key", sa.String(32)),
    sa.Column("name_key", sa.String(32)),
    # Newest-first listings (ORDER BY created DESC, id DESC LIMIT n) read these backwards and stop after n
    # rows; benchmarks/bench_query_scale.py measures them at 100,000 models.
    sa.Index("ix_models_created_id", "created", "id"),
    sa.Index("ix_models_project_key_created", "project_key", "created", "id"),
    sa.Index("ix_models_name_key_created", "name_key", "created", "id"),
    sa.Index("ix_models_task", "task_id"),
)

model_tags = sa.Table(
    "model_tags",
    metadata,
    sa.Column("model_id", sa.String(32), sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("tag_key", sa.String(32), primary_key=True),
    sa.Column("tag", sa.Text, nullable=False),
    # The model's creation time (never changes), copied here so that "newest models with tag t" reads this
    # index backwards and stops after n rows, whether t is on half the models or on a handful.
    sa.Column("created", sa.Float, nullable=False),
    sa.Index("ix_model_tags_key_created", "tag_key", "created", "model_id"),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_id", sa.String(32), sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("iteration", sa.BigInteger),
    sa.Column("uri", sa.Text, nullable=False),
    sa.Column("file_name", sa.Text, nullable=False),
    # None for a single file, "dir" for a manifest package, "zip" for a user-supplied zip package.
    sa.Column("package_format", sa.String(8)),
    sa.Column("size", sa.BigInteger),
    sa.Column("sha256", sa.String(64)),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("tags", sa.Text, nullable=False, default="[]"),
    sa.Column("meta", sa.Text, nullable=False, default="{}"),
    sa.Column("pinned", sa.Boolean, nullable=False, default=False),
    # The journal: what a later process needs to finish or fail this upload.
    sa.Column("job", sa.Text),
    sa.Column("owner", sa.Text),
    sa.Column("host", sa.Text),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
    sa.UniqueConstraint("model_id", "version", name="uq_versions_model_version"),
    sa.Index("ix_versions_state_host", "state", "host"),
    sa.Index("ix_versions_sha", "model_id", "sha256"),
    sa.Index("ix_versions_uri", "uri"),
)

task_models = sa.Table(
    "task_models",
    metadata,
    sa.Column("task_id", sa.String(32), sa.ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("model_id", sa.String(32), sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role", sa.String(8), primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("created", sa.Float, nullable=False),
)

destinations = sa.Table(
    "destinations",
    metadata,
    # Every destination root and registered URI this registry wrote; stored URIs are confined to these.
    sa.Column("uri", sa.Text, primary_key=True),
    sa.Column("created", sa.Float, nullable=False),
)

# PostgreSQL's planner takes `key = k AND text = t` for two independent filters and underestimates the rows
# a name, project or tag matches by orders of magnitude (then it joins and sorts all of them instead of
# reading the newest through the index). Functional-dependency statistics tell it the key determines the text.
_KEY_STATISTICS = {
    tasks: [("st_tasks_project_key", "project_key, project"), ("st_tasks_name_key", "name_key, name")],
    models: [("st_models_project_key", "project_key, project"), ("st_models_name_key", "name_key, name")],
    model_tags: [("st_model_tags_tag_key", "tag_key, tag")],
}


def _key_statistics_ddl(table: sa.Table) -> list[sa.DDL]:
    return [sa.DDL(f"CREATE STATISTICS IF NOT EXISTS {name} (dependencies) ON {columns} FROM {table.name}")
            for name, columns in _KEY_STATISTICS[table]]


for _table in _KEY_STATISTICS:
    for _ddl in _key_statistics_ddl(_table):
        sa.event.listen(_table, "after_create", _ddl.execute_if(dialect="postgresql"))

ACTIVE_STATES = ("pending", "uploading")

JSON_COLUMNS = {"tags", "system_tags", "labels", "meta", "job"}


def text_key(value: str) -> str:
    """Return the fixed-size index key of a name, project or tag (128 bits of its sha256, in hex)."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


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


def _decode(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in JSON_COLUMNS & out.keys():
        if out[key] is not None:
            try:
                out[key] = json.loads(out[key])
            except (TypeError, ValueError) as e:
                raise RegistryError(f"registry column {key!r} holds invalid JSON: {e}") from e
    return out


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
        self.is_sqlite = url.startswith("sqlite")
        self.engine = self._make_engine(url)
        self._ensure_schema()

    # -- connections -------------------------------------------------------------------------------

    def _make_engine(self, url: str) -> Engine:
        if not self.is_sqlite:
            try:
                return sa.create_engine(url, pool_pre_ping=True, future=True)
            except ModuleNotFoundError as e:
                raise RegistryError(
                    f"the registry URL {sa.engine.make_url(url).render_as_string(hide_password=True)} needs a "
                    f"database driver that is not installed ({e.name}); for PostgreSQL run "
                    "`pip install 'modelyard[postgres]'`"
                ) from e
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control from the driver so that BEGIN IMMEDIATE below is what runs.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = "DEFERRED" if conn.get_execution_options().get("modelyard_read") else "IMMEDIATE"
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """Open a write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Open a read-only transaction."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(modelyard_read=True)
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    # -- schema ------------------------------------------------------------------------------------

    def _lock_schema(self, conn: Connection) -> None:
        """Serialise schema creation and migration between processes (SQLite: BEGIN IMMEDIATE already does)."""
        if not self.is_sqlite:
            # Without it, jobs that open a fresh PostgreSQL database at once race in CREATE TABLE and fail
            # with DuplicateTable; the lock is released when the transaction ends.
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK_ID)))

    def _ensure_schema(self) -> None:
        try:
            with self.write() as conn:
                self._lock_schema(conn)
                metadata.create_all(conn, checkfirst=True)
                row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).first()
                if row is None:
                    conn.execute(sa.insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
                    return
                found = int(row[0])
        except sa.exc.IntegrityError:
            # Another process created the schema between our check and insert; it is ours to use.
            return self._ensure_schema()
        except sa.exc.OperationalError as e:
            raise RegistryError(f"cannot open the registry at {self.safe_url}: {e.orig}") from e
        if found > SCHEMA_VERSION:
            raise RegistryError(
                f"the registry at {self.safe_url} has schema version {found}, newer than this modelyard "
                f"understands ({SCHEMA_VERSION}); upgrade with `pip install -U modelyard`"
            )
        if found < SCHEMA_VERSION:
            self.migrate()

    def migrate(self) -> int:
        """Bring the schema to ``SCHEMA_VERSION``; return the version it is at afterwards."""
        with self.write() as conn:
            self._lock_schema(conn)
            metadata.create_all(conn, checkfirst=True)
            row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).first()
            found = int(row[0]) if row else 0
            if found > SCHEMA_VERSION:
                raise RegistryError(
                    f"the registry at {self.safe_url} has schema version {found}, newer than this modelyard "
                    f"understands ({SCHEMA_VERSION}); upgrade with `pip install -U modelyard`")
            for step in range(found + 1, SCHEMA_VERSION + 1):
                _MIGRATIONS[step](conn)
            conn.execute(sa.delete(meta).where(meta.c.key == "schema_version"))
            conn.execute(sa.insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
        return SCHEMA_VERSION

    @property
    def safe_url(self) -> str:
        """The registry URL with any password hidden."""
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    # -- tasks -------------------------------------------------------------------------------------

    def insert_task(self, **fields: Any) -> None:
        """Store a new task row."""
        now = time.time()
        with self.write() as conn:
            conn.execute(sa.insert(tasks).values(**_encode(_with_keys({"created": now, "updated": now, **fields}))))

    def update_task(self, task_id: str, **fields: Any) -> None:
        """Change fields of a task row."""
        with self.write() as conn:
            conn.execute(sa.update(tasks).where(tasks.c.id == task_id)
                         .values(**_encode(_with_keys({"updated": time.time(), **fields}))))

    def get_task(self, task_id: str) -> dict[str, Any]:
        """Return a task row; `NotFoundError` when absent."""
        with self.read() as conn:
            row = conn.execute(sa.select(tasks).where(tasks.c.id == task_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"no task with id {task_id!r} in the registry {self.safe_url}")
        return _decode(row)

    def find_tasks(self, project: str | None = None, name: str | None = None,
                   limit: int | None = None) -> list[dict[str, Any]]:
        """Return task rows, newest first."""
        query = sa.select(tasks).order_by(tasks.c.created.desc(), tasks.c.id)
        if project is not None:
            query = query.where((tasks.c.project_key == text_key(project)) & (tasks.c.project == project))
        if name is not None:
            query = query.where((tasks.c.name_key == text_key(name)) & (tasks.c.name == name))
        if limit is not None:
            query = query.limit(limit)
        with self.read() as conn:
            return [_decode(r) for r in conn.execute(query).mappings()]

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

    def task_model_links(self, task_id: str) -> list[dict[str, Any]]:
        """Return the task's model links in the order they were made."""
        with self.read() as conn:
            rows = conn.execute(sa.select(task_models).where(task_models.c.task_id == task_id)
                                .order_by(task_models.c.created)).mappings()
            return [dict(r) for r in rows]

    # -- models ------------------------------------------------------------------------------------

    def insert_model(self, **fields: Any) -> None:
        """Store a new model row and its tag index."""
        now = time.time()
        fields = _with_keys({"created": now, "updated": now, **fields})
        with self.write() as conn:
            conn.execute(sa.insert(models).values(**_encode(fields)))
            self._write_tags(conn, fields["id"], fields.get("tags") or [], fields["created"])

    @staticmethod
    def _write_tags(conn: Connection, model_id: str, tags: Iterable[str], created: float | None = None) -> None:
        conn.execute(sa.delete(model_tags).where(model_tags.c.model_id == model_id))
        unique = list(dict.fromkeys(tags))
        if unique:
            if created is None:
                created = conn.execute(sa.select(models.c.created).where(models.c.id == model_id)).scalar_one()
            conn.execute(sa.insert(model_tags), [{"model_id": model_id, "tag_key": text_key(t), "tag": t,
                                                  "created": created} for t in unique])

    def update_model(self, model_id: str, *, require_unpublished: bool = False, **fields: Any) -> None:
        """Change fields of a model row (and its tag index when ``tags`` changes)."""
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

    def get_model(self, model_id: str) -> dict[str, Any]:
        """Return a model row; `NotFoundError` when absent."""
        with self.read() as conn:
            row = conn.execute(sa.select(models).where(models.c.id == model_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"no model with id {model_id!r} in the registry {self.safe_url}")
        return _decode(row)

    def query_models(self, project: str | None = None, name: str | None = None,
                     tags: Sequence[str] | None = None, only_published: bool = False,
                     include_archived: bool = False, max_results: int | None = None) -> list[dict[str, Any]]:
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
            return [_decode(r) for r in conn.execute(query).mappings()]

    def delete_model(self, model_id: str) -> None:
        """Delete a model row with its versions, tags and task links."""
        with self.write() as conn:
            for table in (versions, model_tags):
                conn.execute(sa.delete(table).where(table.c.model_id == model_id))
            conn.execute(sa.delete(task_models).where(task_models.c.model_id == model_id))
            conn.execute(sa.delete(models).where(models.c.id == model_id))

    # -- versions ----------------------------------------------------------------------------------

    def add_version(self, model_id: str, *, require_unpublished: bool = True,
                    fields_for: Callable[[int], Mapping[str, Any]] | None = None,
                    model_fields: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        """Allocate the model's next version number and store the version row in one transaction.

        ``fields_for`` receives the allocated number and returns fields that depend on it (the object URI);
        ``model_fields`` are model columns changed in the same transaction.
        """
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
            row = {"model_id": model_id, "version": number, "created": now, "updated": now, **fields,
                   **(fields_for(number) if fields_for else {})}
            version_id = conn.execute(sa.insert(versions).values(**_encode(row))
                                      .returning(versions.c.id)).scalar_one()
        return {**row, "id": version_id}

    def update_version(self, version_id: int, *, expect_owner: str | None = None, **fields: Any) -> bool:
        """Change fields of a version row; with ``expect_owner``, only while that owner still holds it."""
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

    def get_version(self, version_id: int) -> dict[str, Any]:
        """Return a version row by its row id."""
        with self.read() as conn:
            row = conn.execute(sa.select(versions).where(versions.c.id == version_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"no version row {version_id}")
        return _decode(row)

    def model_versions(self, model_id: str, *, state: str | None = None) -> list[dict[str, Any]]:
        """Return a model's versions, oldest first."""
        query = sa.select(versions).where(versions.c.model_id == model_id).order_by(versions.c.version)
        if state is not None:
            query = query.where(versions.c.state == state)
        with self.read() as conn:
            return [_decode(r) for r in conn.execute(query).mappings()]

    def latest_ready_version(self, model_id: str) -> dict[str, Any] | None:
        """Return the newest ``ready`` version of a model, or ``None``."""
        query = (sa.select(versions).where((versions.c.model_id == model_id) & (versions.c.state == "ready"))
                 .order_by(versions.c.version.desc()).limit(1))
        with self.read() as conn:
            row = conn.execute(query).mappings().first()
        return _decode(row) if row else None

    def find_ready_by_hash(self, model_id: str, sha256: str, size: int) -> dict[str, Any] | None:
        """Return a ready version of the model holding exactly these bytes (for deduplication)."""
        query = (sa.select(versions).where(
            (versions.c.model_id == model_id) & (versions.c.sha256 == sha256) & (versions.c.size == size)
            & (versions.c.state == "ready") & (versions.c.package_format.is_(None)))
            .order_by(versions.c.version).limit(1))
        with self.read() as conn:
            row = conn.execute(query).mappings().first()
        return _decode(row) if row else None

    def uri_users(self, uri: str) -> list[dict[str, Any]]:
        """Return (id, model id) of every version not ``failed`` that references an object URI."""
        query = sa.select(versions.c.id, versions.c.model_id).where(
            (versions.c.uri == uri) & (versions.c.state != "failed"))
        with self.read() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def delete_version(self, version_id: int) -> None:
        """Delete a version row."""
        with self.write() as conn:
            conn.execute(sa.delete(versions).where(versions.c.id == version_id))

    def active_versions(self, host: str) -> list[dict[str, Any]]:
        """Return this host's journaled versions still ``pending`` or ``uploading``."""
        query = sa.select(versions).where(versions.c.state.in_(ACTIVE_STATES) & (versions.c.host == host))
        with self.read() as conn:
            return [_decode(r) for r in conn.execute(query.order_by(versions.c.id)).mappings()]

    def claim_version(self, version_id: int, old_owner: str | None, new_owner: str) -> bool:
        """Atomically take over a journaled version from a dead owner."""
        owner_match = versions.c.owner.is_(None) if old_owner is None else versions.c.owner == old_owner
        query = (sa.update(versions)
                 .where((versions.c.id == version_id) & owner_match & versions.c.state.in_(ACTIVE_STATES))
                 .values(owner=new_owner, state="pending", updated=time.time()))
        with self.write() as conn:
            return conn.execute(query).rowcount == 1

    def all_version_uris(self) -> list[dict[str, Any]]:
        """Return (model id, version, uri, size, sha256, state, package format) of every version."""
        query = sa.select(versions.c.id, versions.c.model_id, versions.c.version, versions.c.uri,
                          versions.c.size, versions.c.sha256, versions.c.state, versions.c.package_format)
        with self.read() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

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


def _migrate_to_2(conn: Connection) -> None:
    """Index names, projects and tags by digest (``*_key`` columns), so that any length can be indexed."""
    inspector = sa.inspect(conn)
    for table in (tasks, models):
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in ("project_key", "name_key"):
            if column not in present:
                conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {column} VARCHAR(32)"))
        rows = conn.execute(sa.select(table.c.id, table.c.project, table.c.name)).all()
        if rows:
            conn.execute(sa.update(table).where(table.c.id == sa.bindparam("row_id"))
                         .values(project_key=sa.bindparam("pk"), name_key=sa.bindparam("nk")),
                         [{"row_id": r.id, "pk": text_key(r.project), "nk": text_key(r.name)} for r in rows])
    for old in ("ix_tasks_project_name", "ix_models_created", "ix_models_project_created", "ix_models_name_created",
                "ix_model_tags_tag"):
        conn.execute(sa.text(f"DROP INDEX IF EXISTS {old}"))
    for table in (tasks, models):
        for index in table.indexes:
            index.create(conn, checkfirst=True)
        if conn.dialect.name == "postgresql":
            for ddl in _key_statistics_ddl(table):
                conn.execute(ddl)
    # model_tags is derived from models.tags: rebuild it with its new primary key.
    conn.execute(sa.text("DROP TABLE IF EXISTS model_tags"))
    model_tags.create(conn)
    for model_id, tags_text, created in conn.execute(sa.select(models.c.id, models.c.tags, models.c.created)).all():
        try:
            tags_value = json.loads(tags_text or "[]")
        except ValueError:
            tags_value = []  # an unreadable row stays unreadable; it just is not found by tag
        if isinstance(tags_value, list):
            Registry._write_tags(conn, model_id, [t for t in tags_value if isinstance(t, str) and t], created)


_MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    1: lambda conn: None,  # the first schema; created by create_all
    2: _migrate_to_2,
}

#: The PostgreSQL advisory lock that serialises schema creation and migration ("modelyar" in ASCII).
_SCHEMA_LOCK_ID = 0x6D6F64656C796172

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
