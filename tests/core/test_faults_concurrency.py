"""Real processes at once on one registry and one download cache (RELIABILITY.md R6, R12)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import modelyard
from modelyard import InputModel, Model, OutputModel, Task
from modelyard._registry import get_registry

#: Each child waits for the start file, so that all of them hit the registry in the same instant.
REGISTER_CHILD = textwrap.dedent("""
    import json, os, sys, time
    import numpy as np
    import modelyard
    from modelyard import OutputModel, Task

    index, shared_id, start, work = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    while not os.path.exists(start):
        time.sleep(0.002)
    task = Task.init(project_name="r6", task_name=f"proc-{index}")
    own, uris = [], []
    for k in range(2):
        model = OutputModel(task, name=f"m-{index}-{k}", tags=[f"proc-{index}"])
        own.append(model.id)
        path = os.path.join(work, f"own-{index}-{k}.safetensors")
        modelyard.save_safetensors({"w": np.full(8, 1000 * int(index) + k, np.float32)}, path)
        uris.append(model.update_weights(path, iteration=k))
    shared = OutputModel(task, base_model_id=shared_id)
    for k in range(3):
        path = os.path.join(work, f"shared-{index}-{k}.safetensors")
        modelyard.save_safetensors({"w": np.full(8, 100 * int(index) + k, np.float32)}, path)
        uris.append(shared.update_weights(path, iteration=100 * int(index) + k))
    OutputModel.wait_for_uploads()
    print(json.dumps({"task": task.id, "own": own, "uris": uris}), flush=True)
""")


def _release(procs: list[subprocess.Popen[str]], start: Path, timeout: float = 60) -> list[str]:
    start.touch()
    outputs = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        assert proc.returncode == 0, err
        outputs.append(out)
    return outputs


def test_r6_eight_processes_register_models_and_versions_into_one_sqlite_registry(tmp_path: Path,
                                                                                 core_registry: str) -> None:
    """R6 on SQLite; the same check runs on PostgreSQL (core_registry), where a team's jobs meet."""
    task = Task.init(project_name="r6", task_name="parent")
    shared = OutputModel(task, name="shared")
    script = tmp_path / "child.py"
    script.write_text(REGISTER_CHILD)
    start = tmp_path / "start"
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "MODELYARD_UPLOAD_WORKERS": "2"}
    procs = [subprocess.Popen([sys.executable, str(script), str(i), shared.id, str(start), str(work)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for i in range(8)]
    results = [json.loads(out) for out in _release(procs, start)]

    registry = get_registry()
    assert registry.url.startswith("sqlite" if core_registry == "sqlite" else "postgresql")
    # Every model and task id is unique; every process's own models exist with one ready version each.
    own = [model_id for r in results for model_id in r["own"]]
    assert len(set(own)) == 16 and shared.id not in own
    assert len({r["task"] for r in results}) == 8
    for i, r in enumerate(results):
        assert [m.id for m in Model.query_models(tags=[f"proc-{i}"])] == r["own"][::-1]
        for model_id in r["own"]:
            (version,) = Model(model_id).versions
            assert version.version == 1 and version.state == "ready"
    # The shared model got 24 versions numbered 1..24 with no gap or duplicate, each with its own object.
    versions = Model(shared.id).versions
    assert [v.version for v in versions] == list(range(1, 25))
    assert all(v.state == "ready" for v in versions)
    assert len({v.uri for v in versions}) == 24
    assert sorted(v.iteration for v in versions) == sorted(100 * i + k for i in range(8) for k in range(3))
    for v in versions:
        stored = Path(v.uri[len("file://"):])
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == v.sha256
        assert float(modelyard.load_weights(stored)["w"][0]) == float(v.iteration)
    # Every URI a child was handed is the one the registry serves.
    handed = {uri for r in results for uri in r["uris"]}
    served = {v.uri for v in versions} | {Model(m).url for m in own}
    assert handed == served


DOWNLOAD_CHILD = textwrap.dedent("""
    import hashlib, json, os, sys, time
    from modelyard import Model, _storage

    model_id, start, log = sys.argv[1:4]
    real = _storage.transfer.download_verified

    def slow_download(uri, dest, **kwargs):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(0.5)  # hold the download open long enough for the other process to arrive
        return real(uri, dest, **kwargs)

    _storage.transfer.download_verified = slow_download  # where the cache looks it up
    while not os.path.exists(start):
        time.sleep(0.002)
    path = Model(model_id).get_weights(raise_on_error=True)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    print(json.dumps({"path": path, "sha256": digest}), flush=True)
""")


@pytest.mark.parametrize("how", ["uploaded", "imported"])
def test_r12_two_processes_download_the_same_model_into_one_cache(tmp_path: Path, how: str) -> None:
    source = tmp_path / "w.safetensors"
    modelyard.save_safetensors({"w": np.arange(2 * 1024 * 1024, dtype=np.float32)}, source)  # 8 MiB
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    if how == "uploaded":
        task = Task.init(project_name="p", task_name="t", output_uri=str(tmp_path / "dest"))
        model_id = OutputModel(task).id
        OutputModel(task, base_model_id=model_id).update_weights(str(source), auto_delete_file=False)
        OutputModel.wait_for_uploads()
    else:
        model_id = InputModel.import_model(str(source), name="imported").id  # no sha256 recorded yet
    script = tmp_path / "child.py"
    script.write_text(DOWNLOAD_CHILD)
    start, log = tmp_path / "start", tmp_path / "downloads.log"
    procs = [subprocess.Popen([sys.executable, str(script), model_id, str(start), str(log)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(0.3)  # let both import modelyard first, so they really start together
    results = [json.loads(out) for out in _release(procs, start)]

    assert [r["sha256"] for r in results] == [expected, expected]
    assert results[0]["path"] == results[1]["path"]
    assert hashlib.sha256(Path(results[0]["path"]).read_bytes()).hexdigest() == expected
    downloads = log.read_text().split()
    if how == "uploaded":
        # The lock made the second process wait and take the first one's verified file.
        assert len(downloads) == 1
    else:
        # Nothing to verify against yet: both may fetch, both must agree, and the hash is now recorded.
        assert 1 <= len(downloads) <= 2
        (version,) = Model(model_id).versions
        assert version.sha256 == expected and version.size == source.stat().st_size
    cache = Path(os.environ["MODELYARD_HOME"]) / "cache"
    assert not [p for p in cache.rglob("*") if "partial" in p.name or p.name.startswith(".first-")]
