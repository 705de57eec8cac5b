"""The registry's schema on Alembic: registries of modelyard 0.1 upgraded in place, fresh ones created once.

The fixture in ``data/registry-0.1`` was written by modelyard 0.1 itself (``data/make_registry_0_1.py``): its
DDL on SQLite and PostgreSQL, and every row it recorded for models, versions, tasks, tags and task links.
Every test that opens a database runs on both backends (``registry_backend``).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

import modelyard
from modelyard import InputModel, Model, OutputModel, Task, _migrations, _schema
from modelyard._errors import RegistryError
from modelyard._registry import get_registry
from modelyard._settings import registry_url
from modelyard.testing import reset_state

DATA = Path(__file__).parent / "data"
RELEASE = DATA / "registry-0.1"
STATISTICS = {"st_tasks_project_key", "st_tasks_name_key", "st_models_project_key", "st_models_name_key",
              "st_model_tags_tag_key"}


def plain_engine(url: str) -> sa.Engine:
    """An engine without modelyard's connection settings, as another tool (or the old release) would use."""
    return sa.create_engine(url)


def load_release_registry(url: str, storage: Path) -> dict[str, list[dict[str, Any]]]:
    """Leave at ``url`` the registry modelyard 0.1 wrote, its objects under ``storage``; return its rows."""
    src = storage.parent / "src"
    rows = json.loads((RELEASE / "rows.json").read_text().replace("@STORAGE@", storage.as_uri())
                      .replace("@SRC@", str(src)))
    engine = plain_engine(url)
    with engine.begin() as conn:
        for statement in (RELEASE / f"schema-{engine.dialect.name}.sql").read_text().split(";\n"):
            if statement.strip():
                conn.exec_driver_sql(statement)
        tables = sa.MetaData()
        tables.reflect(conn)
        for name, table_rows in rows.items():
            if table_rows:
                conn.execute(sa.insert(tables.tables[name]), table_rows)
        if engine.dialect.name == "postgresql":
            # Rows inserted with their ids leave the sequence behind; 0.1's own inserts had advanced it.
            conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('versions', 'id'), max(id)) FROM versions")
    engine.dispose()
    for uri, value in json.loads((RELEASE / "objects.json").read_text()).items():
        path = Path(uri.replace("@STORAGE@", str(storage)))
        path.parent.mkdir(parents=True, exist_ok=True)
        modelyard.save_safetensors({"w": np.full((4,), value, np.float32)}, path)
        recorded = next(v for v in rows["versions"] if v["uri"] == path.as_uri())
        assert hashlib.sha256(path.read_bytes()).hexdigest() == recorded["sha256"], "fixture objects drifted"
    return rows


def dump(url: str) -> dict[str, list[dict[str, Any]]]:
    """Return every row of every table of the schema, in primary-key order, booleans as booleans."""
    engine = plain_engine(url)
    with engine.connect() as conn:
        out = {}
        for table in _schema.metadata.sorted_tables:
            booleans = {c.name for c in table.columns if isinstance(c.type, sa.Boolean)}
            out[table.name] = [{k: (bool(v) if k in booleans and v is not None else v) for k, v in r.items()}
                               for r in conn.execute(sa.select(table).order_by(*table.primary_key.columns))
                               .mappings()]
    engine.dispose()
    return out


def schema_differences(url: str) -> list[Any]:
    """Return Alembic's differences between the database and `modelyard._schema` (empty when they agree)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = plain_engine(url)
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                       _schema.metadata)
        if conn.dialect.name == "postgresql":
            found = set(conn.exec_driver_sql("SELECT stxname FROM pg_statistic_ext").scalars())
            if found != STATISTICS:
                differences.append(("statistics", sorted(found ^ STATISTICS)))
    engine.dispose()
    return differences


def stamped(url: str) -> list[str]:
    engine = plain_engine(url)
    with engine.connect() as conn:
        found = list(conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars())
    engine.dispose()
    return found


def by_name(rows: dict[str, list[dict[str, Any]]], table: str, name: str) -> dict[str, Any]:
    return next(r for r in rows[table] if r["name"] == name)


# -- a registry of modelyard 0.1 ------------------------------------------------------------------------


def test_a_registry_from_0_1_is_stamped_in_place_with_nothing_lost(registry_backend: str, tmp_path: Path) -> None:
    url = registry_url()
    rows = load_release_registry(url, tmp_path / "storage")
    assert dump(url) == rows  # the fixture loaded as 0.1 left it
    assert _migrations.current(url) is None  # not stamped: Alembic came after 0.1

    get_registry()  # the first open by this release
    assert stamped(url) == [_migrations.HEAD] and _migrations.current(url) == _migrations.HEAD
    assert dump(url) == rows  # every model, version, task, tag, link and destination, unchanged
    assert schema_differences(url) == []  # exactly the tables a fresh database gets

    # Everything reads back through the public API ...
    resnet, tokenizer = by_name(rows, "models", "resnet"), by_name(rows, "models", "tokenizer")
    train, tune = by_name(rows, "tasks", "resnet"), by_name(rows, "tasks", "finetune")
    assert [m.id for m in Model.query_models(tags=["baseline"])] == [resnet["id"]]  # "old" is archived
    assert [m.id for m in Model.query_models(tags=["cnn", "-tuned"])] == [resnet["id"]]
    assert {m.name for m in Model.query_models(project_name="vision")} == {"resnet", "tokenizer", "resnet-tuned"}
    model = InputModel(name="resnet", project="vision")
    assert (model.id, model.published, model.labels) == (resnet["id"], True, {"cat": 0, "dog": 1})
    assert model.config_dict == {"layers": 50, "lr": 0.1}
    assert [(v.version, v.iteration, v.pinned, v.tags) for v in model.versions] == \
        [(1, 100, True, []), (2, 200, False, ["best"]), (3, 300, False, ["last"])]
    weights = Path(str(model.get_weights(raise_on_error=True, version=2)))  # verified against 0.1's sha256
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == rows["versions"][1]["sha256"]
    assert Task(train["id"]).status == "completed"
    links = Task(tune["id"]).models
    assert [m.id for m in links["input"]] == [resnet["id"]] and len(links["output"]) == 2

    # ... and takes new work: a version on a model of 0.1, a new model found by tag.
    source = tmp_path / "new.safetensors"
    modelyard.save_safetensors({"w": np.zeros(4, np.float32)}, source)
    task = Task.init(project_name="vision", task_name="after-upgrade")
    again = OutputModel(task, base_model_id=tokenizer["id"])
    again.update_weights(str(source), auto_delete_file=False)
    fresh = OutputModel(task, name="fresh", tags=["nlp"])
    fresh.update_weights(str(source), auto_delete_file=False)
    OutputModel.wait_for_uploads()
    assert [(v.version, v.state) for v in Model(tokenizer["id"]).versions] == [(1, "ready"), (2, "ready")]
    assert [m.id for m in Model.query_models(tags=["nlp"])] == [fresh.id, tokenizer["id"]]
    after = dump(url)
    assert after["versions"][:len(rows["versions"])] == rows["versions"] and len(after["versions"]) == 7


OPEN_AT_ONCE = textwrap.dedent("""
    import sys, time
    from modelyard import _registry
    time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
    print(_registry.get_registry().find_tasks(limit=1) is not None)
""")


@pytest.mark.parametrize("start", ["empty", "0.1"])
def test_processes_opening_at_once_create_or_stamp_the_schema_once(registry_backend: str, start: str,
                                                                   tmp_path: Path) -> None:
    url = registry_url()
    rows = load_release_registry(url, tmp_path / "storage") if start == "0.1" else None
    begin = time.time() + 2.0
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_AT_ONCE, str(begin)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(5)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [(p.returncode, out.strip()) for p, (out, _err) in zip(procs, results, strict=True)] == \
        [(0, "True")] * 5, [err[-2000:] for _out, err in results]
    assert stamped(url) == [_migrations.HEAD]
    after = dump(url)
    assert after["modelyard_meta"] == [{"key": "schema_version", "value": str(_schema.SCHEMA_VERSION)}]
    assert after == (rows if rows is not None else {t.name: after[t.name] for t in _schema.metadata.sorted_tables})
    assert schema_differences(url) == []


# -- fresh databases, revisions, versions ----------------------------------------------------------------


def test_a_fresh_registry_is_created_at_head_and_equals_the_revisions_replayed(registry_backend: str) -> None:
    url = registry_url()
    assert _migrations.current(url) is None
    get_registry()
    assert _migrations.current(url) == _migrations.HEAD
    assert schema_differences(url) == []
    assert dump(url)["modelyard_meta"] == [{"key": "schema_version", "value": "2"}]
    reset_state()
    # The same tables through the revisions, from nothing: the path of `modelyard db upgrade --sql`.
    from alembic import command

    engine = plain_engine(url)
    with engine.begin() as conn:
        _schema.metadata.drop_all(conn)
        conn.exec_driver_sql("DROP TABLE alembic_version")
        cfg = _migrations.alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    engine.dispose()
    assert stamped(url) == [_migrations.HEAD]
    assert schema_differences(url) == []
    assert dump(url)["modelyard_meta"] == [{"key": "schema_version", "value": "2"}]


def test_head_is_the_newest_revision_shipped() -> None:
    assert _migrations.known_revisions()[0] == _migrations.HEAD
    assert _migrations.BASELINE in _migrations.known_revisions()


def test_a_registry_of_a_newer_modelyard_is_refused(registry_backend: str) -> None:
    url = registry_url()
    get_registry()
    reset_state()
    engine = plain_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    engine.dispose()
    for open_it in (get_registry, lambda: _migrations.upgrade(url)):
        with pytest.raises(RegistryError, match=r"revision 9999, newer than this modelyard.*pip install -U"):
            open_it()
    assert _migrations.current(url) == "9999"  # reported, never changed


def test_upgrade_creates_an_empty_registry_and_current_never_creates_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/sub/registry.db"
    assert _migrations.current(url) is None
    assert not (tmp_path / "sub").exists()
    assert _migrations.upgrade(url) == _migrations.HEAD
    assert _migrations.current(url) == _migrations.HEAD
    assert _migrations.upgrade(url) == _migrations.HEAD  # idempotent


REVISION_0002 = textwrap.dedent('''
    """Test only: a column on models, added by copying the table on SQLite."""
    import sqlalchemy as sa
    from alembic import op

    revision = "0002"
    down_revision = "0001"
    branch_labels = None
    depends_on = None


    def upgrade():
        # "always": SQLite copies models and drops the old table, whose versions, tags and links must survive.
        recreate = "always" if op.get_context().dialect.name == "sqlite" else "auto"
        with op.batch_alter_table("models", recreate=recreate) as batch:
            batch.add_column(sa.Column("stage", sa.Text))


    def downgrade():
        with op.batch_alter_table("models") as batch:
            batch.drop_column("stage")
''')


def test_an_older_revision_is_upgraded_on_open_keeping_every_row(registry_backend: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    url = registry_url()
    rows = load_release_registry(url, tmp_path / "storage")
    folder = tmp_path / "migrations"
    shutil.copytree(_migrations._FOLDER, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "versions" / "0002_stage.py").write_text(REVISION_0002)
    monkeypatch.setattr(_migrations, "_FOLDER", str(folder))
    monkeypatch.setattr(_migrations, "HEAD", "0002")
    get_registry()  # 0.1 -> stamped 0001 -> upgraded to 0002, in one transaction
    assert stamped(url) == ["0002"]
    assert dump(url) == rows
    engine = plain_engine(url)
    assert "stage" in {c["name"] for c in sa.inspect(engine).get_columns("models")}
    engine.dispose()
    assert [m.name for m in Model.query_models(tags=["baseline"])] == ["resnet"]


# -- the DDL for a DBA -------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["sqlite:///registry.db", "postgresql+psycopg://user:secret@db.example/models"])
def test_upgrade_sql_renders_the_whole_schema_without_connecting(url: str) -> None:
    sql = _migrations.upgrade_sql(url)
    created = set(re.findall(r"^CREATE TABLE (\w+)", sql, re.MULTILINE))
    assert created == {t.name for t in _schema.metadata.tables.values()} | {"alembic_version"}
    indexes = set(re.findall(r"^CREATE (?:UNIQUE )?INDEX (\w+)", sql, re.MULTILINE))
    assert indexes == {i.name for t in _schema.metadata.tables.values() for i in t.indexes}
    assert f"INSERT INTO alembic_version (version_num) VALUES ('{_migrations.HEAD}')" in sql
    assert re.search(r"INSERT INTO modelyard_meta \(\"?key\"?, value\) VALUES \('schema_version', '2'\)", sql)
    statistics = set(re.findall(r"CREATE STATISTICS IF NOT EXISTS (\w+)", sql))
    assert statistics == (STATISTICS if url.startswith("postgresql") else set())
    assert "secret" not in sql


def test_upgrade_sql_gives_a_registry_that_opens_as_is(registry_backend: str) -> None:
    url = registry_url()
    sql = _migrations.upgrade_sql(url)
    if registry_backend == "sqlite":
        db = sqlite3.connect(sa.engine.make_url(url).database)
        db.executescript(sql)
        db.close()
    else:
        import psycopg

        with psycopg.connect(re.sub(r"^postgresql\+\w+://", "postgresql://", url), autocommit=True) as conn:
            conn.execute(sql.encode())
    assert _migrations.current(url) == _migrations.HEAD
    assert schema_differences(url) == []
    task = Task.init(project_name="dba", task_name="run")
    OutputModel(task, name="m", tags=["t"])
    assert [m.name for m in Model.query_models(tags=["t"])] == ["m"]


def test_upgrade_sql_from_a_revision_renders_only_what_follows() -> None:
    assert "CREATE TABLE" not in _migrations.upgrade_sql("sqlite:///x.db", from_revision=_migrations.HEAD)


# -- schema 1 (development builds before 0.1) ---------------------------------------------------------------


def test_a_schema_1_registry_is_brought_to_the_baseline(registry_backend: str) -> None:
    url = registry_url()
    engine = plain_engine(url)
    with engine.begin() as conn:
        for statement in (DATA / "registry-schema-1.sql").read_text().split(";\n"):
            if statement.strip():
                conn.exec_driver_sql(statement)
    engine.dispose()
    get_registry()
    assert stamped(url) == [_migrations.HEAD]
    assert schema_differences(url) == []
    assert dump(url)["modelyard_meta"] == [{"key": "schema_version", "value": "2"}]
    assert [m.id for m in Model.query_models(tags=["b"])] == ["m2", "m1"]
    assert [m.id for m in Model.query_models(model_name="old")] == ["m1"]
