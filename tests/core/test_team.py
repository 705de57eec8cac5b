"""Team scale (issue 9): the same behaviour on SQLite and PostgreSQL, concurrent writers, S3 round trips.

Every test here runs on both registry backends (``BOTH_BACKENDS`` in ``conftest.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import fsspec
import numpy as np
import pytest
import sqlalchemy as sa

import modelyard
from modelyard import InputModel, Model, OutputModel, Task, _registry, _storage
from modelyard.testing import reset_state


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the same data model on both backends -----------------------------------------------------------


def test_names_projects_and_tags_of_any_length_are_stored_and_found(tmp_path: Path) -> None:
    # Incompressible and far above PostgreSQL's ~2.7 kB b-tree row limit: indexed by digest, compared in full.
    project, task_name, name, tag = (secrets.token_hex(6000) for _ in range(4))
    task = Task.init(project_name=project, task_name=task_name)
    out = OutputModel(task, name=name, tags=[tag, "short"], comment=secrets.token_hex(6000))
    twin = OutputModel(task, name=name[:-1] + ("0" if name[-1] != "0" else "1"), tags=[tag[:-1]])
    assert [m.id for m in Model.query_models(project_name=project)] == [twin.id, out.id]
    assert [m.id for m in Model.query_models(model_name=name)] == [out.id]
    assert [m.id for m in Model.query_models(tags=[tag])] == [out.id]
    assert [m.id for m in Model.query_models(project_name=project, tags=["-" + tag])] == [twin.id]
    assert InputModel(name=name, project=project).id == out.id
    assert [t.id for t in _registry.get_registry().find_tasks(project=project, name=task_name)] == [task.id]
    out.name = name + "!"
    assert [m.id for m in Model.query_models(model_name=name + "!")] == [out.id]
    assert Model.query_models(model_name=name) == []


def test_query_models_is_one_statement_newest_first_whatever_the_filters(task: Task) -> None:
    outs = [OutputModel(task, name=f"m{i}", tags=["t", *(["odd"] if i % 2 else [])]) for i in range(12)]
    outs[1].tags = ["t", "odd", "late"]  # tags rewritten later keep the model's place (its creation time)
    newest_first = [o.id for o in reversed(outs)]
    engine = _registry.get_registry().engine
    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        found = Model.query_models(tags=["t"], max_results=10)
        assert [m.id for m in found] == newest_first[:10]
        assert len(statements) == 1  # Model objects are built from the rows, not re-read one by one
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    odd = [o.id for o in reversed(outs[1::2])]
    assert [m.id for m in Model.query_models(tags=["odd"])] == odd
    assert [m.id for m in Model.query_models(tags=["odd", "-late"])] == [i for i in odd if i != outs[1].id]
    assert [m.id for m in Model.query_models(tags=["late", "odd", "t"])] == [outs[1].id]
    assert [m.id for m in Model.query_models(tags=["-odd"], max_results=3)] == newest_first[1::2][:3]
    Model(outs[10].id).archive()
    assert outs[10].id not in [m.id for m in Model.query_models(tags=["t"])]
    assert [m.id for m in Model.query_models(tags=["t"], include_archived=True)] == newest_first


@pytest.mark.parametrize("field", ["comment", "config_text", "framework", "name"])
def test_nul_characters_are_refused_the_same_way_on_every_backend(task: Task, field: str) -> None:
    # PostgreSQL text cannot hold NUL; SQLite could, but the two must not differ.
    with pytest.raises(ValueError, match="NUL"):
        OutputModel(task, **{field: "a\x00b"})
    out = OutputModel(task, name="ok")
    with pytest.raises(ValueError, match="NUL"):
        if field == "config_text":
            out.update_design(config_text="a: '\x00'")
        elif field == "framework":
            OutputModel(task, framework="x\x00")
        else:
            setattr(out, field, "a\x00b")
    assert [m.name for m in Model.query_models(project_name="proj")] == ["ok"]


def test_links_made_concurrently_by_threads_leave_one_row(task: Task) -> None:
    out = OutputModel(task, name="m")
    registry = _registry.get_registry()
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def link() -> None:
        try:
            barrier.wait()
            for _ in range(5):
                registry.link_task_model(task.id, out.id, "input", "weights")
        except BaseException as e:  # noqa: BLE001 - collected and asserted on below
            errors.append(e)

    threads = [threading.Thread(target=link) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    roles = [(r.model_id, r.role) for r in registry.task_model_links(task.id)]
    assert sorted(roles) == [(out.id, "input"), (out.id, "output")]


# --- schema: migration from version 1, and many processes opening a fresh registry ---------------------

V1_DDL = [
    "CREATE TABLE modelyard_meta (key VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE tasks (id VARCHAR(32) PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL, "
    "status VARCHAR(16) NOT NULL, output_uri TEXT, tags TEXT NOT NULL, created FLOAT NOT NULL, "
    "updated FLOAT NOT NULL)",
    "CREATE INDEX ix_tasks_project_name ON tasks (project, name)",
    "CREATE TABLE models (id VARCHAR(32) PRIMARY KEY, task_id VARCHAR(32), project TEXT NOT NULL, "
    "name TEXT NOT NULL, comment TEXT NOT NULL, framework TEXT, config_text TEXT, labels TEXT, "
    "tags TEXT NOT NULL, system_tags TEXT NOT NULL, published BOOLEAN NOT NULL, archived BOOLEAN NOT NULL, "
    "base_model_id VARCHAR(32), upload_uri TEXT, version_count INTEGER NOT NULL, created FLOAT NOT NULL, "
    "updated FLOAT NOT NULL)",
    "CREATE INDEX ix_models_created ON models (created)",
    "CREATE INDEX ix_models_project_created ON models (project, created)",
    "CREATE INDEX ix_models_name_created ON models (name, created)",
    "CREATE INDEX ix_models_task ON models (task_id)",
    "CREATE TABLE model_tags (model_id VARCHAR(32) NOT NULL REFERENCES models (id) ON DELETE CASCADE, "
    "tag TEXT NOT NULL, PRIMARY KEY (model_id, tag))",
    "CREATE INDEX ix_model_tags_tag ON model_tags (tag, model_id)",
    "INSERT INTO modelyard_meta VALUES ('schema_version', '1')",
    "INSERT INTO tasks VALUES ('t1', 'proj', 'run', 'created', NULL, '[]', 1.0, 1.0)",
    "INSERT INTO models VALUES ('m1', 't1', 'proj', 'old', '', NULL, NULL, NULL, '[\"a\", \"b\"]', '[]', "
    "false, false, NULL, NULL, 0, 1.0, 1.0)",
    "INSERT INTO models VALUES ('m2', 't1', 'proj', 'new', '', NULL, NULL, NULL, '[\"b\"]', '[]', "
    "false, false, NULL, NULL, 0, 2.0, 2.0)",
    "INSERT INTO model_tags VALUES ('m1', 'a'), ('m1', 'b'), ('m2', 'b')",
]


def test_a_schema_version_1_registry_is_migrated_on_open(tmp_path: Path) -> None:
    url = _registry.registry_url()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in V1_DDL:
            conn.exec_driver_sql(statement)
    engine.dispose()
    registry = _registry.get_registry()
    with registry.read() as conn:
        assert conn.execute(sa.text("SELECT value FROM modelyard_meta")).scalar_one() == "2"
    assert [m.id for m in Model.query_models(project_name="proj")] == ["m2", "m1"]
    assert [m.id for m in Model.query_models(model_name="old")] == ["m1"]
    assert [m.id for m in Model.query_models(tags=["b"])] == ["m2", "m1"]
    assert [m.id for m in Model.query_models(tags=["a"])] == ["m1"]
    assert [t.id for t in registry.find_tasks(project="proj", name="run")] == ["t1"]
    assert registry.migrate() == 2  # idempotent: `modelyard db upgrade` on a current registry changes nothing
    assert [m.id for m in Model.query_models(tags=["b"])] == ["m2", "m1"]


OPEN_AT_ONCE = textwrap.dedent("""
    import sys, time
    from modelyard import _registry
    time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
    registry = _registry.get_registry()
    print(registry.find_tasks() == [])
""")


def test_many_processes_opening_a_fresh_registry_at_once(tmp_path: Path) -> None:
    # On PostgreSQL they all run CREATE TABLE at the same moment: without the schema lock, all but one failed.
    start = time.time() + 2.0
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_AT_ONCE, str(start)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [(p.returncode, out.strip()) for p, (out, _err) in zip(procs, results, strict=True)] == \
        [(0, "True")] * 6, [err[-2000:] for _out, err in results]


# --- concurrent writers on one model ------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import hashlib, json, os, sys, time
    import numpy as np
    import modelyard
    from modelyard import OutputModel, Task

    model_id, worker, count, folder, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], \\
        float(sys.argv[5])
    task = Task.init(project_name="team", task_name=f"worker-{worker}")
    out = OutputModel(task, base_model_id=model_id)
    rng = np.random.default_rng(worker)
    written = {}
    time.sleep(max(0.0, start - time.time()))
    for k in range(count):
        path = os.path.join(folder, f"w{worker}-{k}.safetensors")
        modelyard.save_safetensors({"w": rng.random(1000, np.float32)}, path)
        iteration = worker * 1000 + k
        written[iteration] = hashlib.sha256(open(path, "rb").read()).hexdigest()
        out.update_weights(path, iteration=iteration)
    OutputModel.wait_for_uploads()
    print(json.dumps(written))
""")


def run_writers(model_id: str, workers: int, count: int, folder: Path) -> dict[int, str]:
    """Start ``workers`` processes that each add ``count`` versions to one model at the same moment."""
    folder.mkdir(parents=True, exist_ok=True)
    start = time.time() + 2.0
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, model_id, str(w), str(count), str(folder),
                               str(start)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(workers)]
    written: dict[int, str] = {}
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        written.update({int(k): v for k, v in json.loads(out.strip().splitlines()[-1]).items()})
    return written


def test_concurrent_writers_on_one_model_get_distinct_versions(task: Task, tmp_path: Path) -> None:
    out = OutputModel(task, name="shared")
    written = run_writers(out.id, workers=4, count=20, folder=tmp_path / "writers")
    reset_state()
    model = Model(out.id)
    versions = model.versions
    assert sorted(v.version for v in versions) == list(range(1, 81))  # none lost, none twice
    assert {v.iteration: v.sha256 for v in versions} == written
    assert all(v.state == "ready" for v in versions), [(v.version, v.state, v.error) for v in versions]
    for v in versions[::7]:  # read a sample back through the verified download path
        assert sha(Path(str(model.get_weights(raise_on_error=True, version=v.version))).read_bytes()) == v.sha256
    assert model.url == versions[-1].uri
    with _registry.get_registry().read() as conn:
        count = conn.execute(sa.select(_registry.models.c.version_count)
                             .where(_registry.models.c.id == out.id)).scalar_one()
    assert count == 80


# --- S3 with either registry ---------------------------------------------------------------------------


@pytest.mark.s3
def test_s3_bucket_as_the_team_default_destination(s3_bucket: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_DEFAULT_OUTPUT_URI", f"{s3_bucket}/team")
    task = Task.init(project_name="vision", task_name="resnet")
    out = OutputModel(task, name="resnet", label_enumeration={"cat": 0, "dog": 1})
    digests = []
    for i in range(3):
        src = tmp_path / "src" / f"{i}.safetensors"
        src.parent.mkdir(parents=True, exist_ok=True)
        modelyard.save_safetensors({"w": np.full((64,), i, np.float32)}, src)
        digests.append(sha(src.read_bytes()))
        assert out.update_weights(str(src), iteration=i).startswith(f"{s3_bucket}/team/vision/")
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "config.json").write_text('{"layers": 50}')
    other = OutputModel(task, name="resnet-tokenizer")
    other.update_weights_package(weights_path=str(folder), auto_delete_file=False)
    OutputModel.wait_for_uploads()

    # A fresh process with the same environment (another job of the team) reads everything back.
    reader = textwrap.dedent("""
        import hashlib, json, pathlib
        from modelyard import InputModel
        m = InputModel(name="resnet", project="vision")
        path = m.get_weights(raise_on_error=True)
        pkg = pathlib.Path(InputModel(name="resnet-tokenizer").get_weights_package(return_path=True))
        print(json.dumps([m.id, m.labels, hashlib.sha256(open(path, "rb").read()).hexdigest(),
                          (pkg / "config.json").read_text()]))
    """)
    # Another machine: its own home (and download cache), the same registry and bucket.
    env = {**os.environ, "MODELYARD_HOME": str(tmp_path / "other-home"),
           "MODELYARD_REGISTRY_URL": _registry.registry_url()}
    result = subprocess.run([sys.executable, "-c", reader], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == [out.id, {"cat": 0, "dog": 1}, digests[-1], '{"layers": 50}']

    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    for v in out.versions:
        assert v.state == "ready" and sha(fs.cat_file(_storage.split_uri(v.uri)[1])) == v.sha256
    assert [v.sha256 for v in out.versions] == digests
    assert Model.remove(out.id, raise_on_errors=True) and Model.remove(other.id, raise_on_errors=True)
    fs.invalidate_cache()
    assert fs.find(s3_bucket.removeprefix("s3://")) == []
