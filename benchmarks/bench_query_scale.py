"""Query scale (issue 9): Model.query_models on 100,000 models with 1,000,000 versions, SQLite and PostgreSQL.

Run: python benchmarks/bench_query_scale.py [--models 100000] [--versions-per-model 10] [--runs 50] [--quick]
Needs MODELYARD_TEST_POSTGRES_URL for the PostgreSQL rows (``eval "$(bash .ci/start-postgres.sh)"``); a fresh
database is created and dropped afterwards. Writes benchmarks/results/query_scale.json (--quick: 10,000 models,
results not written). Target: p50 < 20 ms for every query on both backends.

The registry is generated directly (not through uploads) into modelyard's own schema, created by modelyard:
SQLite through executemany in one transaction, PostgreSQL through COPY. The shape is a team registry:

- projects: 30% of the models in ``vision`` (one big project), the rest spread over 99 others;
- names: 10% share ``resnet50`` (a framework's default name), the rest ~5 models per name;
- tags: ``experiment`` on 50%, ``prod`` on 1%, and one of 500 ``team-<n>`` tags on each (0.2%);
- 5% archived (hidden by default), creation times shuffled against insertion order;
- 10 ready versions per model.

Each query is the public call, newest first with ``max_results=50``, timed end to end (SQL, row decoding,
``Model`` objects) over ``--runs`` runs after warm-up; the number of SQL statements one call issues is
counted (1: the ``Model`` objects are built from the rows, never re-read one by one), and the query plan of
each is recorded (EXPLAIN QUERY PLAN / EXPLAIN).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402
from _common import table, write_results  # noqa: E402

from modelyard import Model  # noqa: E402
from modelyard import _registry as reg  # noqa: E402
from modelyard.testing import reset_state  # noqa: E402

QUERIES: list[tuple[str, dict]] = [
    ("newest (no filter)", {}),
    ("project: big (30%)", {"project_name": "vision"}),
    ("project: small (0.7%)", {"project_name": "project-57"}),
    ("name: common (10%)", {"model_name": "resnet50"}),
    ("name: rare (~5)", {"model_name": "model-42"}),
    ("tag: common (50%)", {"tags": ["experiment"]}),
    ("tag: 1%", {"tags": ["prod"]}),
    ("tag: rare (0.2%)", {"tags": ["team-123"]}),
    ("project + tag", {"project_name": "vision", "tags": ["prod"]}),
    ("tag, excluding tag", {"tags": ["prod", "-experiment"]}),
]

MODEL_COLUMNS = ["id", "task_id", "project", "name", "comment", "framework", "config_text", "labels", "tags",
                 "system_tags", "published", "archived", "base_model_id", "upload_uri", "version_count",
                 "created", "updated", "project_key", "name_key"]
VERSION_COLUMNS = ["id", "model_id", "version", "iteration", "uri", "file_name", "package_format", "size",
                   "sha256", "state", "error", "tags", "meta", "pinned", "job", "owner", "host", "created",
                   "updated"]


def generate(n_models: int, per_model: int, seed: int = 0):
    """Yield (models, model_tags, versions) row batches of the team registry described above."""
    rng = random.Random(seed)
    base = 1_700_000_000.0
    order = list(range(n_models))
    rng.shuffle(order)  # creation time is not insertion order (many jobs, many machines)
    keys: dict[str, str] = {}

    def key(text: str) -> str:
        found = keys.get(text)
        if found is None:
            found = keys[text] = reg.text_key(text)
        return found

    batch_models, batch_tags, batch_versions = [], [], []
    version_id = 0
    for i in range(n_models):
        model_id = uuid.UUID(int=rng.getrandbits(128)).hex
        project = "vision" if rng.random() < 0.30 else f"project-{rng.randrange(1, 100)}"
        name = "resnet50" if rng.random() < 0.10 else f"model-{rng.randrange(n_models // 5)}"
        tags = [f"team-{rng.randrange(500)}"]
        if rng.random() < 0.5:
            tags.append("experiment")
        if rng.random() < 0.01:
            tags.append("prod")
        created = base + order[i] + rng.random()
        tags_json = "[" + ", ".join(f'"{t}"' for t in tags) + "]"
        batch_models.append((model_id, None, project, name, "", "torch", None, None, tags_json, "[]",
                             False, rng.random() < 0.05, None, None, per_model, created, created,
                             key(project), key(name)))
        batch_tags.extend((model_id, key(t), t, created) for t in tags)
        for v in range(1, per_model + 1):
            version_id += 1
            sha = f"{rng.getrandbits(256):064x}"
            uri = f"s3://team-models/{project}/train.{model_id[:8]}/models/{model_id}/{v}/model.safetensors"
            batch_versions.append((version_id, model_id, v, v * 100, uri, "model.safetensors", None, 4096, sha,
                                   "ready", None, "[]", "{}", False, None, None, None, created + v, created + v))
        if len(batch_versions) >= 100_000 or i == n_models - 1:
            yield batch_models, batch_tags, batch_versions
            batch_models, batch_tags, batch_versions = [], [], []


def load_sqlite(registry: reg.Registry, n_models: int, per_model: int) -> None:
    raw = registry.engine.raw_connection()
    try:
        conn = raw.driver_connection
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN IMMEDIATE")
        for models, tags, versions in generate(n_models, per_model):
            conn.executemany(f"INSERT INTO models ({', '.join(MODEL_COLUMNS)}) VALUES "
                             f"({', '.join('?' * len(MODEL_COLUMNS))})", models)
            conn.executemany("INSERT INTO model_tags (model_id, tag_key, tag, created) VALUES (?, ?, ?, ?)", tags)
            conn.executemany(f"INSERT INTO versions ({', '.join(VERSION_COLUMNS)}) VALUES "
                             f"({', '.join('?' * len(VERSION_COLUMNS))})", versions)
        conn.execute("COMMIT")
    finally:
        raw.close()


def load_postgres(registry: reg.Registry, n_models: int, per_model: int) -> None:
    raw = registry.engine.raw_connection()
    try:
        conn = raw.driver_connection
        with conn.cursor() as cur:
            for models, tags, versions in generate(n_models, per_model):
                for table_name, columns, rows in (("models", MODEL_COLUMNS, models),
                                                  ("model_tags", ["model_id", "tag_key", "tag", "created"], tags),
                                                  ("versions", VERSION_COLUMNS, versions)):
                    with cur.copy(f"COPY {table_name} ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
            cur.execute("SELECT setval(pg_get_serial_sequence('versions', 'id'), (SELECT max(id) FROM versions))")
        conn.commit()
    finally:
        raw.close()


def explain(registry: reg.Registry, kwargs: dict) -> str:
    """Return the query plan of the SQL that ``Model.query_models(**kwargs, max_results=50)`` runs."""
    statements: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    sa.event.listen(registry.engine, "before_cursor_execute", capture)
    try:
        Model.query_models(**kwargs, max_results=50)
    finally:
        sa.event.remove(registry.engine, "before_cursor_execute", capture)
    statement, parameters = statements[-1]
    prefix = "EXPLAIN QUERY PLAN " if registry.is_sqlite else "EXPLAIN "
    with registry.engine.connect() as conn:
        rows = conn.exec_driver_sql(prefix + statement, parameters).all()
    return "\n".join(str(r[-1]) for r in rows)


def count_statements(registry: reg.Registry, kwargs: dict) -> int:
    seen = []

    def count(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            seen.append(statement)

    sa.event.listen(registry.engine, "before_cursor_execute", count)
    try:
        Model.query_models(**kwargs, max_results=50)
    finally:
        sa.event.remove(registry.engine, "before_cursor_execute", count)
    return len(seen)


def measure(backend: str, url: str, n_models: int, per_model: int, runs: int) -> dict:
    os.environ["MODELYARD_REGISTRY_URL"] = url
    reset_state()
    registry = reg.get_registry()  # modelyard creates its own schema, indexes included
    started = time.perf_counter()
    (load_sqlite if backend == "sqlite" else load_postgres)(registry, n_models, per_model)
    generated = time.perf_counter() - started
    analyzed = time.perf_counter()
    with registry.engine.connect() as conn:
        # What a live server does by itself (autovacuum) and what SQLite's `PRAGMA optimize` does.
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    analyzed = time.perf_counter() - analyzed
    with registry.read() as conn:
        counts = {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                  for t in (reg.models, reg.versions, reg.model_tags)}
    results = []
    for label, kwargs in QUERIES:
        for _ in range(5):
            found = Model.query_models(**kwargs, max_results=50)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            found = Model.query_models(**kwargs, max_results=50)
            times.append(1000 * (time.perf_counter() - t0))
        times.sort()
        created = [m._registry.get_model(m.id).created for m in found[:5]]
        assert created == sorted(created, reverse=True), f"{label}: not newest first"
        results.append({"query": label, "kwargs": kwargs, "results": len(found),
                        "p50_ms": statistics.median(times), "p95_ms": times[int(0.95 * (len(times) - 1))],
                        "min_ms": times[0], "statements": count_statements(registry, kwargs),
                        "plan": explain(registry, kwargs)})
    reset_state()
    return {"backend": backend, "generate_s": generated, "analyze_s": analyzed, "rows": counts, "queries": results}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=100_000)
    parser.add_argument("--versions-per-model", type=int, default=10)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="10,000 models, results not written")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], action="append")
    args = parser.parse_args()
    if args.quick:
        args.models, args.runs = 10_000, 20
    admin = os.environ.get("MODELYARD_TEST_POSTGRES_URL", "").strip()
    backends = args.backend or (["sqlite", "postgres"] if admin else ["sqlite"])
    if "postgres" in backends and not admin:
        parser.error("MODELYARD_TEST_POSTGRES_URL is not set (eval \"$(bash .ci/start-postgres.sh)\" starts one)")
    out = []
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-query-") as tmp:
        os.environ["MODELYARD_HOME"] = tmp
        for backend in backends:
            name = None
            if backend == "sqlite":
                url = f"sqlite:///{tmp}/registry.db"
            else:
                import psycopg

                name = f"modelyard_bench_{uuid.uuid4().hex[:12]}"
                libpq = admin.replace("postgresql+psycopg://", "postgresql://", 1)
                with psycopg.connect(libpq, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                url = urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))
            try:
                out.append(measure(backend, url, args.models, args.versions_per_model, args.runs))
            finally:
                if name:
                    with psycopg.connect(libpq, autocommit=True) as conn:
                        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    ok = True
    for result in out:
        rows = []
        for q in result["queries"]:
            ok &= q["p50_ms"] < 20 and q["statements"] == 1
            rows.append([q["query"], q["results"], f"{q['p50_ms']:.2f}", f"{q['p95_ms']:.2f}", q["statements"],
                         "yes" if q["p50_ms"] < 20 else "NO"])
        r = result["rows"]
        table(f"{result['backend']}: {r['models']:,} models, {r['versions']:,} versions, {r['model_tags']:,} tag "
              f"rows (generated in {result['generate_s']:.0f} s), max_results=50",
              ["query", "results", "p50 ms", "p95 ms", "SQL statements", "p50 < 20 ms"], rows)
    if not args.quick:
        path = write_results("query_scale", {"models": args.models, "versions_per_model": args.versions_per_model,
                                             "runs": args.runs, "load_average": os.getloadavg(),
                                             "backends": out})
        print(f"\nwrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
