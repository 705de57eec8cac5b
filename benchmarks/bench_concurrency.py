"""Concurrent writers at scale (issue 9): N processes x M versions against SQLite and PostgreSQL.

Run: python benchmarks/bench_concurrency.py [--processes 8] [--versions 100] [--quick]
Needs MODELYARD_TEST_POSTGRES_URL for the PostgreSQL rows (``eval "$(bash .ci/start-postgres.sh)"``); a fresh
database is created for each run and dropped afterwards. Writes benchmarks/results/concurrency.json
(--quick: 4 x 10, results not written).

Every process starts at the same instant and calls ``update_weights`` on small files (4 KiB of float32, unique
bytes) with a local destination, then waits for its uploads. Two layouts:

- ``shared``: all processes append to one model (every version number comes from one counter row);
- ``own``: each process writes its own model (writers contend only for the database).

Checked after each run: no process failed, every (model, version) pair is unique and the numbers of each model
are 1..n with no gap, every version is ``ready``, and each stored object's sha256 equals the recorded one and
the one the writer computed before handing the file over. Throughput is versions / wall time from the common
start to the last process done (all ready); per-call latency of ``update_weights`` is reported too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import table, write_results  # noqa: E402

WORKER = textwrap.dedent("""
    import hashlib, json, os, sys, time
    import numpy as np
    import modelyard
    from modelyard import OutputModel, Task

    model_id, worker, count, folder, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], \\
        float(sys.argv[5])
    task = Task.init(project_name="bench", task_name=f"writer-{worker}")
    out = OutputModel(task, name=f"writer-{worker}") if model_id == "-" else OutputModel(task, base_model_id=model_id)
    rng = np.random.default_rng(worker)
    paths = []
    for k in range(count):  # files prepared before the start: only modelyard is timed
        path = os.path.join(folder, f"w{worker}-{k}.safetensors")
        modelyard.save_safetensors({"w": rng.random(1024, np.float32)}, path)
        paths.append(path)
    written, calls = {}, []
    time.sleep(max(0.0, start - time.time()))
    for k, path in enumerate(paths):
        iteration = worker * 100_000 + k
        with open(path, "rb") as f:
            written[iteration] = hashlib.sha256(f.read()).hexdigest()
        t0 = time.perf_counter()
        out.update_weights(path, iteration=iteration)
        calls.append(time.perf_counter() - t0)
    OutputModel.wait_for_uploads()
    print(json.dumps({"model": out.id, "written": written, "calls": calls, "done": time.time()}))
""")


def fresh_postgres(admin_url: str) -> tuple[str, str]:
    import psycopg

    name = f"modelyard_bench_{uuid.uuid4().hex[:12]}"
    libpq = admin_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}")), name


def drop_postgres(admin_url: str, name: str) -> None:
    import psycopg

    libpq = admin_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(backend: str, layout: str, processes: int, versions: int, work: Path, registry_url: str) -> dict:
    home = work / f"home-{backend}-{layout}"
    home.mkdir(parents=True)
    env = {**os.environ, "MODELYARD_HOME": str(home), "MODELYARD_REGISTRY_URL": registry_url}
    env.pop("MODELYARD_DEFAULT_OUTPUT_URI", None)
    shared = "-"
    if layout == "shared":
        made = subprocess.run([sys.executable, "-c", "from modelyard import OutputModel, Task; "
                               "print(OutputModel(Task.init(project_name='bench', task_name='owner'), "
                               "name='shared').id)"], env=env, capture_output=True, text=True, check=True)
        shared = made.stdout.strip()
    folder = work / f"src-{backend}-{layout}"
    folder.mkdir()
    start = time.time() + 3.0 + 0.4 * processes  # every process imported and its files written by then
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, shared, str(w), str(versions), str(folder),
                               str(start)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(processes)]
    reports, errors = [], []
    for proc in procs:
        out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            errors.append(err[-2000:])
        else:
            reports.append(json.loads(out.strip().splitlines()[-1]))
    wall = max(r["done"] for r in reports) - start if reports else float("nan")
    return {"backend": backend, "layout": layout, "processes": processes, "versions_each": versions,
            "errors": errors, "wall_s": wall, **verify(env, reports, processes * versions)}


def verify(env: dict[str, str], reports: list[dict], expected: int) -> dict:
    """Read the registry back in a fresh process and check every promise; return the findings."""
    script = textwrap.dedent("""
        import json, sys
        from modelyard import _registry
        print(json.dumps(_registry.get_registry().all_version_uris()))
    """)
    rows = json.loads(subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                     check=True).stdout)
    pairs = Counter((r["model_id"], r["version"]) for r in rows)
    by_model: dict[str, list[int]] = {}
    for model_id, version in pairs:
        by_model.setdefault(model_id, []).append(version)
    gaps = sum(sorted(v) != list(range(1, len(v) + 1)) for v in by_model.values())
    written = {sha for r in reports for sha in r["written"].values()}
    bad_objects = 0
    for r in rows:
        with open(urlsplit(r["uri"]).path, "rb") as f:
            bad_objects += hashlib.sha256(f.read()).hexdigest() != r["sha256"] or r["sha256"] not in written
    calls = sorted(c for r in reports for c in r["calls"])
    return {
        "versions": len(rows), "expected": expected,
        "duplicate_pairs": sum(n - 1 for n in pairs.values()),
        "models_with_gaps": gaps,
        "not_ready": sum(r["state"] != "ready" for r in rows),
        "hash_mismatches": bad_objects,
        "call_p50_ms": 1000 * statistics.median(calls) if calls else None,
        "call_p95_ms": 1000 * calls[int(0.95 * (len(calls) - 1))] if calls else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="4 x 10, results not written")
    args = parser.parse_args()
    if args.quick:
        args.processes, args.versions = 4, 10
    admin = os.environ.get("MODELYARD_TEST_POSTGRES_URL", "").strip()
    backends = ["sqlite"] + (["postgres"] if admin else [])
    if not admin:
        print("MODELYARD_TEST_POSTGRES_URL is not set: PostgreSQL skipped "
              "(eval \"$(bash .ci/start-postgres.sh)\" starts one)")
    results = []
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-conc-") as tmp:
        work = Path(tmp)
        for backend in backends:
            for layout in ("shared", "own"):
                if backend == "sqlite":
                    url, dbname = f"sqlite:///{work}/{layout}-registry.db", None
                else:
                    url, dbname = fresh_postgres(admin)
                try:
                    results.append(run(backend, layout, args.processes, args.versions, work, url))
                finally:
                    if dbname:
                        drop_postgres(admin, dbname)
    rows = []
    ok = True
    for r in results:
        correct = (not r["errors"] and r["versions"] == r["expected"] and r["duplicate_pairs"] == 0
                   and r["models_with_gaps"] == 0 and r["not_ready"] == 0 and r["hash_mismatches"] == 0)
        ok &= correct
        r["correct"] = correct
        r["versions_per_s"] = r["versions"] / r["wall_s"] if r["wall_s"] == r["wall_s"] else None
        rows.append([r["backend"], r["layout"], f"{r['processes']} x {r['versions_each']}", r["versions"],
                     len(r["errors"]), r["duplicate_pairs"], r["not_ready"], r["hash_mismatches"],
                     f"{r['wall_s']:.1f}", f"{r['versions_per_s']:.0f}", f"{r['call_p50_ms']:.1f}",
                     f"{r['call_p95_ms']:.1f}", "yes" if correct else "NO"])
    table("Concurrent writers (small files, local destination)",
          ["backend", "layout", "procs x versions", "versions", "errors", "dup pairs", "not ready",
           "bad hash", "wall s", "versions/s", "call p50 ms", "call p95 ms", "correct"], rows)
    for r in results:
        for err in r["errors"]:
            print(f"\n{r['backend']}/{r['layout']} process error:\n{err}")
    if not args.quick:
        path = write_results("concurrency", {"load_average": os.getloadavg(), "results": results})
        print(f"\nwrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
