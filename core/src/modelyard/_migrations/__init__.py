"""Creating and migrating the registry's schema, on Alembic (SQLite in batch mode, and PostgreSQL).

Opening a registry calls `ensure_schema`. A database stamped at `HEAD` costs two cheap reads; anything else is
settled in one transaction holding the schema lock (PostgreSQL: an advisory lock; SQLite: ``BEGIN IMMEDIATE``),
so that processes opening a fresh database at once create it once:

- an empty database gets the tables of `modelyard._schema` (``create_all``) and is stamped at `HEAD`, without
  replaying the revisions;
- a database created by modelyard 0.1 (``schema_version`` 2 in ``modelyard_meta``, no ``alembic_version``) is
  stamped at the baseline revision ``0001`` in place, then upgraded like any other;
- a schema-1 database (development builds before 0.1) is first brought to schema 2 by `_legacy`;
- a database at an older revision is upgraded to `HEAD` (``alembic upgrade head``);
- a revision this release does not know, written by a newer modelyard, is refused with `RegistryError`.

For the command line: `upgrade` (``modelyard db upgrade``), `upgrade_sql` (``--sql``: the DDL for a DBA,
Alembic's offline mode) and `current` (``modelyard db current``).

Adding a revision (a schema change): change `modelyard._schema`, then write the revision beside ``0001`` in
``versions/`` (``python -m modelyard._migrations revision -m "what changes"`` starts one from the
template, ``--autogenerate`` fills it against a database at `HEAD`), alter tables inside
``op.batch_alter_table`` (SQLite copies the table), keep it renderable as SQL (no Python computation of data),
and move `HEAD` to it. ``tests/core/test_migrations.py`` checks that replaying the revisions gives exactly the
tables of `modelyard._schema` on both backends.
"""

from __future__ import annotations

import io
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from modelyard import _engine
from modelyard._errors import RegistryError
from modelyard._schema import SCHEMA_VERSION, meta, metadata
from modelyard._settings import registry_url

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

#: The newest revision this release knows; move it with every new revision (a test checks it is the head).
HEAD = "0001"

#: The revision of a registry created by modelyard 0.1 (``schema_version`` 2, before Alembic).
BASELINE = "0001"

#: Alembic's bookkeeping table, as Alembic creates it: stamping a fresh database needs no Alembic import.
_version_table = sa.Table(
    "alembic_version",
    sa.MetaData(),
    sa.Column("version_num", sa.String(32), nullable=False),
    sa.PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)

#: The PostgreSQL advisory lock that serialises schema creation and migration ("modelyar" in ASCII).
_SCHEMA_LOCK_ID = 0x6D6F64656C796172

_FOLDER = os.path.dirname(os.path.abspath(__file__))


def ensure_schema(engine: Engine) -> str:
    """Create, stamp or upgrade the registry's schema as needed; return its revision (`HEAD`).

    Raises:
        RegistryError: The database cannot be opened, or a newer modelyard wrote it.
    """
    try:
        with _engine.read(engine) as conn:
            if _stamped(conn) == HEAD:
                return HEAD
        return _upgrade(engine)
    except sa.exc.OperationalError as e:
        raise RegistryError(f"cannot open the registry at {_engine.safe_url(str(engine.url))}: {e.orig}") from e


def upgrade_engine(engine: Engine) -> str:
    """Bring the schema behind an engine to `HEAD`, checking it even when it is stamped there already.

    Returns:
        The revision it is at afterwards (`HEAD`).

    Raises:
        RegistryError: A newer modelyard wrote the registry.
    """
    try:
        return _upgrade(engine)
    except sa.exc.OperationalError as e:
        raise RegistryError(f"cannot open the registry at {_engine.safe_url(str(engine.url))}: {e.orig}") from e


def upgrade(url: str | None = None) -> str:
    """Bring a registry's schema to this release's revision (``modelyard db upgrade``).

    Creates the tables in an empty database, stamps one created by modelyard 0.1, applies pending revisions.

    Args:
        url: The registry URL; default: the configured registry (`modelyard._settings.registry_url`).

    Returns:
        The revision the registry is at afterwards (`HEAD`).

    Raises:
        RegistryError: The registry cannot be opened, or a newer modelyard wrote it.
    """
    engine = _engine.make_engine(url or registry_url())
    try:
        return upgrade_engine(engine)
    finally:
        engine.dispose()


def upgrade_sql(url: str | None = None, *, from_revision: str | None = None) -> str:
    """Return the SQL that creates the schema from nothing (``modelyard db upgrade --sql``), for a DBA to run.

    Alembic's offline mode: nothing is connected to, the statements are rendered in the dialect of ``url``
    (PostgreSQL for a ``postgresql`` URL), and end with stamping ``alembic_version``.

    Args:
        url: The registry URL whose dialect to render; default: the configured registry.
        from_revision: Render only the revisions after this one (for a database already at it).

    Returns:
        The SQL script, statements separated by ``;`` and blank lines.
    """
    from alembic import command

    out = io.StringIO()
    cfg = alembic_config(output=out)
    cfg.attributes["url"] = url or registry_url()
    command.upgrade(cfg, f"{from_revision}:head" if from_revision else "head", sql=True)
    return out.getvalue()


def current(url: str | None = None) -> str | None:
    """Return the revision a registry is stamped at (``modelyard db current``), changing nothing.

    Args:
        url: The registry URL; default: the configured registry.

    Returns:
        The revision, or ``None`` for an empty database and for one created by modelyard 0.1 and not opened
        since (opening it, or `upgrade`, stamps it at ``0001``).
    """
    url = url or registry_url()
    if _engine.is_sqlite(url):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:" and not os.path.exists(path):
            return None  # do not create an empty database file just to say there is nothing in it
    engine = _engine.make_engine(url)
    try:
        with _engine.read(engine) as conn:
            return _stamped(conn)
    except sa.exc.OperationalError as e:
        raise RegistryError(f"cannot open the registry at {_engine.safe_url(url)}: {e.orig}") from e
    finally:
        engine.dispose()


def known_revisions() -> list[str]:
    """Return every revision id this release ships, newest first."""
    return [script.revision for script in _script_directory().walk_revisions()]


# -- internals --------------------------------------------------------------------------------------


def alembic_config(output: io.StringIO | None = None) -> Config:
    """Build the Alembic configuration in code: no ``alembic.ini`` is needed or read."""
    from alembic.config import Config

    config = Config(output_buffer=output)
    # ConfigParser interpolates "%": a folder with one in its path must reach Alembic unchanged.
    config.set_main_option("script_location", _FOLDER.replace("%", "%%"))
    return config


def _script_directory() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def _stamped(conn: Connection) -> str | None:
    """Return the revision in ``alembic_version``, or ``None`` when the table is absent or empty."""
    if not sa.inspect(conn).has_table(_version_table.name):
        return None
    found = conn.execute(sa.select(_version_table.c.version_num)).scalars().all()
    # Several rows would be several branch heads, which no modelyard release makes: unknown, hence refused.
    return ",".join(sorted(found)) or None


def _stamp(conn: Connection, revision: str) -> None:
    _version_table.create(conn, checkfirst=True)
    conn.execute(sa.delete(_version_table))
    conn.execute(sa.insert(_version_table).values(version_num=revision))


def _legacy_level(conn: Connection, where: str) -> int | None:
    """Return ``schema_version`` from ``modelyard_meta``, or ``None`` when there is none."""
    if not sa.inspect(conn).has_table(meta.name):
        return None
    value = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise RegistryError(f"the registry at {where} records an unreadable schema version {value!r}; restore "
                            "it from a backup or point MODELYARD_REGISTRY_URL at another database") from None


def _newer(where: str, found: object) -> RegistryError:
    return RegistryError(f"the registry at {where} has schema revision {found}, newer than this modelyard "
                         f"understands ({HEAD}, schema version {SCHEMA_VERSION}); upgrade with "
                         "`pip install -U modelyard`")


def _upgrade(engine: Engine) -> str:
    where = _engine.safe_url(str(engine.url))
    with _schema_transaction(engine) as conn:
        found = _stamped(conn)
        level = _legacy_level(conn, where)
        if level is not None and level > SCHEMA_VERSION:
            raise _newer(where, f"{found} with schema version {level}")
        if found == HEAD:
            return HEAD
        if found is None:
            if level is None:  # an empty database (or one whose creation never committed)
                metadata.create_all(conn, checkfirst=True)
                conn.execute(sa.insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
                _stamp(conn, HEAD)
                return HEAD
            if level < 2:
                from . import _legacy

                _legacy.upgrade_schema_1(conn)
            _stamp(conn, BASELINE)
            found = BASELINE
            if found == HEAD:
                return HEAD
        if found not in known_revisions():
            raise _newer(where, found)
        from alembic import command

        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return HEAD


@contextmanager
def _schema_transaction(engine: Engine) -> Iterator[Connection]:
    """Open the one transaction in which the schema is created or migrated, holding the schema lock."""
    with engine.connect() as conn:
        raw = None
        if conn.dialect.name == "sqlite":
            # A batch ALTER copies the table and drops the old one; with foreign keys on, that DROP would cascade
            # to every version, tag and task link of the models. The PRAGMA is a no-op inside a transaction,
            # so it is set before BEGIN, and the keys are checked before COMMIT instead.
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():  # BEGIN IMMEDIATE on SQLite: the write lock is the schema lock
                if raw is None:
                    # Without it, jobs that open a fresh PostgreSQL database at once race in CREATE TABLE and
                    # fail with DuplicateTable; the lock is released when the transaction ends.
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK_ID)))
                yield conn
                if raw is not None:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RegistryError(f"a schema migration left {len(broken)} rows whose foreign key "
                                            f"points nowhere (first: {tuple(broken[0])}); nothing was changed")
        finally:
            if raw is not None:
                try:
                    raw.execute("PRAGMA foreign_keys=ON")
                except sqlite3.Error:
                    conn.invalidate()  # never hand a connection without foreign keys back to the pool
