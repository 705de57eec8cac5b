"""The shared fixtures in tests/conftest.py work against real servers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


# --- modelyard_home -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def polluted_environment() -> Iterator[None]:
    # Module-scoped fixtures run before the autouse function-scoped modelyard_home, like a developer's shell.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODELYARD_REGISTRY_URL", "postgresql+psycopg://someone@db.example/prod")
        mp.setenv("MODELYARD_DEFAULT_OUTPUT_URI", "s3://production-bucket")
        mp.setenv("MODELYARD_HOME", "/nonexistent/home")
        mp.setenv("MODELYARD_UPLOAD_WORKERS", "99")
        mp.setenv("MODELYARD_TEST_SOMETHING", "kept")
        yield


def test_modelyard_home_is_fresh_and_alone(polluted_environment: None, modelyard_home: Path,
                                           tmp_path: Path) -> None:
    assert os.environ["MODELYARD_HOME"] == str(modelyard_home)
    assert modelyard_home.is_dir()
    assert list(modelyard_home.iterdir()) == []
    assert modelyard_home.is_relative_to(tmp_path)
    for name in ("MODELYARD_REGISTRY_URL", "MODELYARD_DEFAULT_OUTPUT_URI", "MODELYARD_UPLOAD_WORKERS"):
        assert name not in os.environ
    assert os.environ["MODELYARD_TEST_SOMETHING"] == "kept"


def test_registry_backend(registry_backend: str) -> None:
    if registry_backend == "sqlite":
        assert "MODELYARD_REGISTRY_URL" not in os.environ
    else:
        assert os.environ["MODELYARD_REGISTRY_URL"].startswith("postgresql+psycopg://")


def test_infrastructure_tests_do_not_import_modelyard_or_servers() -> None:
    # The conftest is import-light; run in a fresh interpreter so other tests' imports do not count.
    code = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, "tests")
        import conftest
        heavy = {"modelyard", "moto", "s3fs", "boto3", "botocore", "psycopg", "sqlalchemy", "fsspec", "torch"}
        print(sorted(heavy & set(sys.modules)))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- s3 -------------------------------------------------------------------------------------------


def test_s3_server_answers(s3_server, request: pytest.FixtureRequest) -> None:
    assert s3_server.endpoint_url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(f"{s3_server.endpoint_url}/moto-api/", timeout=5) as response:
        assert response.status == 200
    assert os.environ["AWS_ENDPOINT_URL_S3"] == s3_server.endpoint_url
    assert request.node.get_closest_marker("s3") is not None


def test_s3fs_round_trip(s3_bucket: str) -> None:
    import fsspec

    fs = fsspec.filesystem("s3")
    fs.pipe(f"{s3_bucket}/models/m.bin", b"weights")
    with fsspec.open(f"{s3_bucket}/models/config.yaml", "w") as f:
        f.write("lr: 0.1\n")
    assert fs.cat(f"{s3_bucket}/models/m.bin") == b"weights"
    assert sorted(fs.ls(f"{s3_bucket}/models", detail=False)) == [
        f"{s3_bucket[5:]}/models/config.yaml",
        f"{s3_bucket[5:]}/models/m.bin",
    ]
    with fsspec.open(f"{s3_bucket}/models/config.yaml", "r") as f:
        assert f.read() == "lr: 0.1\n"


def test_s3fs_multipart_upload(s3_bucket: str) -> None:
    import fsspec

    fs = fsspec.filesystem("s3")
    data = os.urandom(12 * 1024 * 1024)  # > the 5 MiB block size: multipart upload
    with fs.open(f"{s3_bucket}/big.bin", "wb", block_size=5 * 1024 * 1024) as f:
        for i in range(0, len(data), 1024 * 1024):
            f.write(data[i : i + 1024 * 1024])
    assert fs.cat(f"{s3_bucket}/big.bin") == data


def test_boto3_reaches_the_same_server(s3_bucket: str) -> None:
    boto3 = pytest.importorskip("boto3")
    import fsspec

    fsspec.filesystem("s3").pipe(f"{s3_bucket}/k", b"from s3fs")
    client = boto3.client("s3")
    try:
        body = client.get_object(Bucket=s3_bucket[5:], Key="k")["Body"]
        with body:
            assert body.read() == b"from s3fs"
    finally:
        client.close()


def test_each_test_gets_a_fresh_bucket(s3_bucket: str) -> None:
    import fsspec

    assert fsspec.filesystem("s3").ls(s3_bucket) == []


def test_subprocess_reaches_the_server(s3_bucket: str) -> None:
    import fsspec

    fsspec.filesystem("s3").pipe(f"{s3_bucket}/from-parent", b"hello child")
    code = textwrap.dedent(
        f"""
        import fsspec
        fs = fsspec.filesystem("s3")
        assert fs.cat("{s3_bucket}/from-parent") == b"hello child"
        fs.pipe("{s3_bucket}/from-child", b"hello parent")
        """
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True, timeout=60)
    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    assert fs.cat(f"{s3_bucket}/from-child") == b"hello parent"


def test_missing_bucket_is_file_not_found(s3_server) -> None:
    import fsspec

    with pytest.raises(FileNotFoundError):
        fsspec.filesystem("s3").pipe("s3://modelyard-no-such-bucket/k", b"x")


# --- postgres -------------------------------------------------------------------------------------


def test_postgres_select_one(postgres_registry_url: str, request: pytest.FixtureRequest) -> None:
    import psycopg

    assert os.environ["MODELYARD_REGISTRY_URL"] == postgres_registry_url
    assert postgres_registry_url.startswith("postgresql+psycopg://")
    libpq = postgres_registry_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(libpq) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        database = conn.execute("SELECT current_database()").fetchone()
    assert database is not None
    assert postgres_registry_url.endswith(f"/{database[0]}")
    assert database[0].startswith("modelyard_test_")
    assert request.node.get_closest_marker("postgres") is not None


def test_postgres_through_sqlalchemy(postgres_registry_url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_registry_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (id integer primary key)"))
            conn.execute(sa.text("INSERT INTO t VALUES (1), (2)"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM t")).scalar_one() == 2
    finally:
        engine.dispose()


def test_postgres_database_is_fresh_per_test(postgres_registry_url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_registry_url)
    try:
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("t")
            conn.execute(sa.text("CREATE TABLE t (id integer)"))
            conn.commit()
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def lingering() -> Iterator[dict]:
    # Holds a connection past its test's teardown (module teardown comes after every function teardown).
    state: dict = {}
    yield state
    if "conn" in state:
        state["conn"].close()


def test_a_connection_left_open(postgres_registry_url: str, lingering: dict) -> None:
    import psycopg

    libpq = postgres_registry_url.replace("postgresql+psycopg://", "postgresql://", 1)
    lingering["conn"] = psycopg.connect(libpq, autocommit=True)
    lingering["dbname"] = lingering["conn"].info.dbname


def test_does_not_keep_its_database_alive(postgres_url: str, lingering: dict) -> None:
    import psycopg

    if "dbname" not in lingering:
        pytest.skip("runs after test_a_connection_left_open")
    admin = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin) as conn:
        row = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (lingering["dbname"],))
        assert row.fetchone() == (0,)


@pytest.mark.slow
def test_postgres_skip_reason_without_a_server() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MODELYARD_TEST_POSTGRES_URL"}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", f"{__file__}::test_postgres_select_one", "-rs", "-q",
         "-p", "no:cacheprovider", "-W", "error"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 skipped" in out.stdout
    reason = "PostgreSQL not available: set MODELYARD_TEST_POSTGRES_URL or run .ci/start-postgres.sh"
    assert reason in out.stdout


def test_skipped_postgres_tests_are_announced_in_one_line(tmp_path) -> None:
    """Without a server the env still passes, so the run must say loudly that the PostgreSQL half did not run."""

    env = {k: v for k, v in os.environ.items() if k != "MODELYARD_TEST_POSTGRES_URL"}
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/core/test_task.py"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("modelyard: "))
    assert "PostgreSQL tests SKIPPED: no server" in line and ".ci/start-postgres.sh" in line
