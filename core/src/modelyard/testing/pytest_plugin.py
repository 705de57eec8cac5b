"""pytest fixtures for testing code that uses modelyard against real servers: S3 (moto) and PostgreSQL.

Shipped with modelyard (as tox ships ``tox.pytest``) so that a third-party integration can run its tests
against a real object store and a real PostgreSQL registry, exactly as modelyard's own suite does. It is
registered under the ``pytest11`` entry point ``modelyard``, so installing modelyard makes the fixtures
available; disable it with ``-p no:modelyard``. A suite that turns entry-point plugins off can load it with
``pytest_plugins = ["modelyard.testing.pytest_plugin"]`` in its root conftest.

Import-light: beyond ``import modelyard`` itself (which imports no framework), importing it loads pytest and
the standard library only; moto, s3fs, psycopg and boto are imported inside the fixtures that need them. No
fixture here is autouse, so installing modelyard changes no other project's tests; a suite that wants every
test isolated makes ``modelyard_home`` autouse in its own conftest.

Fixtures:
    modelyard_home: a fresh, empty ``MODELYARD_HOME`` with every other ``MODELYARD_*`` setting removed
        (``MODELYARD_TEST_*`` are kept: they configure the test run, not modelyard), and modelyard's
        process-wide state reset before and after.
    registry_backend: parametrises a test over ``"sqlite"`` (the embedded default) and ``"postgres"``.
    faulty_fs: the ``faulty://`` fault-injecting filesystem, registered and emptied.
    s3_server (session): a moto S3 server on 127.0.0.1 that every s3fs/boto3 client reaches, here and in
        subprocesses.
    s3_bucket: a fresh bucket on that server, as ``s3://<name>``.
    postgres_url (session): the admin URL from ``MODELYARD_TEST_POSTGRES_URL``, or a skip.
    postgres_registry_url: a fresh PostgreSQL database per test, also set as ``MODELYARD_REGISTRY_URL``.
    postgres_schema_url: a fresh schema per test in one session database, also set as
        ``MODELYARD_REGISTRY_URL`` (much cheaper per test than a database).

Tests that use the S3 fixtures are marked ``s3`` and those that use the PostgreSQL ones ``postgres``, so
``-m "not s3"`` and ``-m "not postgres"`` work without every test repeating the marker.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

__all__ = ["POSTGRES_SKIP_REASON", "POSTGRES_URL_ENV", "S3Server", "reset_modelyard_state"]

#: The environment variable holding the admin URL of the test PostgreSQL server.
POSTGRES_URL_ENV = "MODELYARD_TEST_POSTGRES_URL"
POSTGRES_SKIP_REASON = (
    "PostgreSQL not available: set MODELYARD_TEST_POSTGRES_URL or run .ci/start-postgres.sh"
)

# Which markers a test gets from the fixtures it uses.
_FIXTURE_MARKERS = {
    "s3_server": "s3",
    "s3_bucket": "s3",
    "postgres_url": "postgres",
    "postgres_registry_url": "postgres",
    "postgres_session_database": "postgres",
    "postgres_schema_url": "postgres",
}
_MARKERS = {
    "s3": "needs the moto S3 server (started by the fixture)",
    "postgres": "needs a PostgreSQL server (MODELYARD_TEST_POSTGRES_URL)",
}


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers this plugin adds, so ``--strict-markers`` accepts them."""
    for name, description in _MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with ``s3`` / ``postgres`` according to the fixtures it uses."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for marker in sorted({m for fixture, m in _FIXTURE_MARKERS.items() if fixture in names}):
            item.add_marker(getattr(pytest.mark, marker))


#  -------------------------------------------------------------------------------------------------
# Per-test isolation
#  -------------------------------------------------------------------------------------------------


def reset_modelyard_state() -> None:
    """Reset modelyard's in-process state (upload engine, registries, current task, plugin manager).

    It must stop upload workers and dispose registry engines: a test's MODELYARD_HOME and PostgreSQL database
    are deleted right after. Only what a test actually imported is reset, so tests that never import
    modelyard do not pay for it.
    """
    if "modelyard" in sys.modules:
        from modelyard.testing import reset_state

        reset_state()
    faults = sys.modules.get("modelyard.testing.faults")
    if faults is not None:
        faults.FaultyFileSystem.reset()


@pytest.fixture
def modelyard_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Give a test a fresh, empty ``MODELYARD_HOME`` and no other modelyard configuration.

    ``MODELYARD_REGISTRY_URL`` and ``MODELYARD_DEFAULT_OUTPUT_URI`` (and every other ``MODELYARD_*`` setting
    from the developer's shell) are removed, so modelyard uses an embedded SQLite registry and local storage
    under the new home. :func:`postgres_registry_url` sets ``MODELYARD_REGISTRY_URL`` again for the tests
    that ask for it.

    Yields:
        The home folder, ``<tmp_path>/modelyard-home`` (created, empty).
    """
    for name in list(os.environ):
        if name.startswith("MODELYARD_") and not name.startswith("MODELYARD_TEST_"):
            monkeypatch.delenv(name)
    home = tmp_path / "modelyard-home"
    home.mkdir()
    monkeypatch.setenv("MODELYARD_HOME", str(home))
    reset_modelyard_state()
    yield home
    reset_modelyard_state()


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def registry_backend(request: pytest.FixtureRequest, modelyard_home: Path) -> str:
    """Run a test once on the embedded SQLite registry and once on a fresh PostgreSQL database.

    The postgres case is skipped with a clear reason when no server is configured.

    Returns:
        ``"sqlite"`` (``MODELYARD_REGISTRY_URL`` unset) or ``"postgres"`` (set to a fresh database).
    """
    if request.param == "postgres":
        request.getfixturevalue("postgres_registry_url")
    return str(request.param)


@pytest.fixture
def faulty_fs() -> Iterator[object]:
    """Register the ``faulty://`` filesystem and start the test with no objects and no fault plans.

    Yields:
        A :class:`modelyard.testing.faults.FaultyFileSystem` instance. Configure faults with
        ``faulty_fs.set_plan("bucket", FaultPlan(...))``; code under test that opens ``faulty://bucket/...``
        through fsspec sees the same objects and plans.
    """
    from modelyard.testing import faults

    faults.register()
    faults.FaultyFileSystem.reset()
    yield faults.FaultyFileSystem()
    faults.FaultyFileSystem.reset()


#  -------------------------------------------------------------------------------------------------
# S3 (moto server)
#  -------------------------------------------------------------------------------------------------

# Started as `python -c _MOTO_BOOTSTRAP <args>`: runs moto's server, and exits when pytest dies without
# tearing it down (its parent changes), so a killed test run leaves no server behind.
_MOTO_BOOTSTRAP = """\
# modelyard.testing.pytest_plugin: moto S3 server
import os, sys, threading, time
parent = os.getppid()
def _watch_parent():
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)
threading.Thread(target=_watch_parent, daemon=True).start()
from moto.server import main
main(sys.argv[1:])
"""


@dataclass(frozen=True)
class S3Server:
    """A running moto S3 server.

    Attributes:
        endpoint_url: ``http://127.0.0.1:<port>``.
        env: The environment variables that point S3 clients at it. They are already set in ``os.environ`` for
            the whole session, so subprocesses inherit them; pass them explicitly only to a subprocess started
            with a custom ``env=``.
        log_path: The server's log file.
    """

    endpoint_url: str
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_moto(log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start moto's server on a free port; retry on another port if the one picked was taken meanwhile."""
    last_error = ""
    for _attempt in range(3):
        port = _free_port()
        endpoint = f"http://127.0.0.1:{port}"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-c", _MOTO_BOOTSTRAP, "-H", "127.0.0.1", "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1) as response:
                    if response.status == 200:
                        return proc, endpoint
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        last_error = log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"moto server did not start; its log ({log_path}) ends with:\n{last_error}")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """Run a moto S3 server for the session and point every S3 client in this process and its children at it.

    Sets, for the whole session: ``AWS_ENDPOINT_URL_S3`` (botocore reads it whenever a client is created, so
    s3fs, boto3 and subprocesses all reach the server), fake credentials, ``AWS_DEFAULT_REGION=us-east-1``,
    and empty AWS config files so a developer's ``~/.aws`` cannot redirect the tests to a real account.

    Yields:
        The running server.
    """
    for module in ("moto", "flask", "flask_cors"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"moto's S3 server is not installed ({module} missing): pip install 'moto[server]'")
    workdir = tmp_path_factory.mktemp("moto")
    proc, endpoint = _start_moto(workdir / "moto.log")
    empty = workdir / "empty-aws-config"
    empty.touch()
    env = {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                         "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
                         "FSSPEC_S3_ENDPOINT_URL", "FSSPEC_S3"):
                mp.delenv(name, raising=False)
            for name, value in env.items():
                mp.setenv(name, value)
            _clear_s3fs_instances()  # instances created before the server would keep their old endpoint
            yield S3Server(endpoint_url=endpoint, env=env, log_path=workdir / "moto.log")
            _clear_s3fs_instances()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _clear_s3fs_instances() -> None:
    s3fs = sys.modules.get("s3fs")
    if s3fs is not None:
        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[str]:
    """Create a fresh, empty bucket for one test and delete it (with its objects) afterwards.

    Yields:
        The bucket URL, ``s3://modelyard-test-<random>``.
    """
    s3fs = pytest.importorskip("s3fs", reason="s3fs is not installed: pip install 'modelyard[s3]'")
    name = f"modelyard-test-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem()
    fs.mkdir(name)
    yield f"s3://{name}"
    fs.invalidate_cache()
    try:
        fs.rm(name, recursive=True)
    except FileNotFoundError:
        pass  # the test deleted its bucket itself
    fs.invalidate_cache()


#  -------------------------------------------------------------------------------------------------
# PostgreSQL
#  -------------------------------------------------------------------------------------------------


def _libpq_url(url: str) -> str:
    """Turn a SQLAlchemy URL (``postgresql+psycopg://...``) into a libpq one (``postgresql://...``)."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """Return the admin URL of the test PostgreSQL server, or skip when none is configured.

    The URL comes from ``MODELYARD_TEST_POSTGRES_URL`` (``.ci/start-postgres.sh`` prints it). A URL that is
    set but unreachable fails the tests instead of skipping them, so CI cannot silently lose its PostgreSQL
    runs.

    Returns:
        ``postgresql+psycopg://user:password@127.0.0.1:PORT/db``; the user may create databases.
    """
    url = os.environ.get(POSTGRES_URL_ENV, "").strip()
    if not url:
        pytest.skip(POSTGRES_SKIP_REASON)
    if not url.startswith("postgresql"):
        pytest.fail(f"{POSTGRES_URL_ENV}={url!r} is not a postgresql+psycopg:// URL", pytrace=False)
    psycopg = pytest.importorskip(
        "psycopg", reason="psycopg is not installed: pip install 'modelyard[postgres]'"
    )
    try:
        with psycopg.connect(_libpq_url(url), connect_timeout=10) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as e:
        pytest.fail(f"{POSTGRES_URL_ENV} is set but the server does not answer: {e}", pytrace=False)
    return url


@pytest.fixture
def postgres_registry_url(postgres_url: str, modelyard_home: Path,
                          monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Create a fresh PostgreSQL database for one test and make it modelyard's registry.

    Sets ``MODELYARD_REGISTRY_URL`` to the new database for the test, and drops the database afterwards
    (``WITH (FORCE)``, so connections the test left open do not keep it alive).

    Yields:
        ``postgresql+psycopg://user:password@host:port/modelyard_test_<random>``.
    """
    import psycopg
    from psycopg import sql

    name = f"modelyard_test_{uuid.uuid4().hex[:16]}"
    admin = _libpq_url(postgres_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        # FILE_COPY (PostgreSQL 15+) copies the tiny template's files instead of WAL-logging every block:
        # half the time per test, which adds up over the core suite's PostgreSQL runs.
        strategy = sql.SQL(" STRATEGY FILE_COPY" if conn.info.server_version >= 150000 else "")
        conn.execute(sql.SQL("CREATE DATABASE {}{}").format(sql.Identifier(name), strategy))
    url = urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))
    monkeypatch.setenv("MODELYARD_REGISTRY_URL", url)
    try:
        yield url
    finally:
        reset_modelyard_state()  # dispose modelyard's engines before their database goes away
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def postgres_session_database(postgres_url: str) -> Iterator[str]:
    """Create one PostgreSQL database for the whole session (dropped at the end); see `postgres_schema_url`.

    Yields:
        ``postgresql+psycopg://user:password@host:port/modelyard_session_<random>``.
    """
    import psycopg
    from psycopg import sql

    name = f"modelyard_session_{uuid.uuid4().hex[:16]}"
    admin = _libpq_url(postgres_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def postgres_schema_url(postgres_session_database: str, modelyard_home: Path,
                        monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Give one test a fresh, empty PostgreSQL schema as modelyard's registry (cheaper than a database).

    The URL selects the schema with libpq's ``options=-csearch_path=<schema>``, as a team keeping modelyard's
    tables in their own schema would; creating a schema takes milliseconds where a database takes a few
    hundred, which matters for the core suite run once per backend. Sets ``MODELYARD_REGISTRY_URL`` and drops
    the schema afterwards.

    Yields:
        ``postgresql+psycopg://user:password@host:port/modelyard_session_<random>?options=-csearch_path%3D<schema>``.
    """
    import psycopg
    from psycopg import sql

    schema = f"t_{uuid.uuid4().hex[:16]}"
    libpq = _libpq_url(postgres_session_database)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    url = f"{postgres_session_database}?options=-csearch_path%3D{schema}"
    monkeypatch.setenv("MODELYARD_REGISTRY_URL", url)
    try:
        yield url
    finally:
        reset_modelyard_state()  # close modelyard's connections before the schema goes away
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
