"""Connections to a registry database: the engine factory and its transaction policy (SQLite and PostgreSQL).

Writes on SQLite run in ``BEGIN IMMEDIATE`` transactions with a busy timeout, because deferred transactions
fail with "database is locked" as soon as a few processes write at once (RELIABILITY.md invariant 7).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ._errors import RegistryError, short_repr
from ._settings import ENV_REGISTRY_URL


def is_sqlite(url: str) -> bool:
    """Tell whether a registry URL names an SQLite database."""
    return url.startswith("sqlite")


def parse_url(url: str) -> sa.engine.URL:
    """Parse a registry URL; a typed error naming the setting when it is not one.

    Raises:
        RegistryError: ``url`` is not a database URL.
    """
    try:
        return sa.engine.make_url(url)
    except sa.exc.ArgumentError as e:
        raise RegistryError(
            f"{ENV_REGISTRY_URL}={short_repr(url)} is not a database URL: use postgresql+psycopg://USER:PASSWORD@"
            f"HOST/DB for a team registry or sqlite:////ABSOLUTE/PATH/registry.db, or unset {ENV_REGISTRY_URL} "
            "for the embedded registry under MODELYARD_HOME") from e


def safe_url(url: str) -> str:
    """Return the registry URL with any password hidden, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<not a database URL>"  # never echo what may be a password in an unparseable string


def make_engine(url: str) -> Engine:
    """Create the engine of a registry URL, with modelyard's connection settings.

    Raises:
        RegistryError: The URL is not a database URL, or needs a database driver that is not installed.
    """
    parse_url(url)
    if not is_sqlite(url):
        try:
            return sa.create_engine(url, pool_pre_ping=True, future=True)
        except ModuleNotFoundError as e:
            raise RegistryError(
                f"the registry URL {safe_url(url)} needs a database driver that is not installed ({e.name}); for "
                "PostgreSQL run `pip install 'modelyard[postgres]'`"
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
def write(engine: Engine) -> Iterator[Connection]:
    """Open a write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success."""
    with engine.connect() as conn, conn.begin():
        yield conn


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    """Open a read-only transaction."""
    with engine.connect() as conn:
        conn = conn.execution_options(modelyard_read=True)
        with conn.begin():
            yield conn
