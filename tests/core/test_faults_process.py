"""Real subprocesses killed with real signals at named phases of an upload (RELIABILITY.md R3, R4, R5)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import modelyard
from modelyard import Model, _storage
from modelyard.testing import reset_state

CHILD = textwrap.dedent("""
    import os, sys, time, numpy as np
    import modelyard
    from modelyard import OutputModel, Task, _uploads

    phase, marker, first, second = sys.argv[1:5]
    extra = sys.argv[5:]
    if os.environ.get("CHILD_SIGTERM"):
        modelyard.enable_graceful_shutdown()

    def hook(name, job):
        if name == phase and job.version >= 2:
            with open(marker, "w") as f:
                f.write(str(job.version))
            # Block like a stalled network call, but wake up when the engine is told to stop.
            _uploads.get_engine()._stop.wait(3600)

    task = Task.init(project_name="p", task_name="t")
    out = OutputModel(task, name="m")
    print(out.id, flush=True)
    out.update_weights(first, iteration=1)
    OutputModel.wait_for_uploads()
    _uploads._phase_hook = hook
    out.update_weights(second, iteration=2)
    for path in extra:
        out.update_weights(path, iteration=3)
    if phase == "none":
        sys.exit(0)
    time.sleep(3600)
""")


def make_file(path: Path, mib: int, value: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    modelyard.save_safetensors({"w": np.full((mib * 1024 * 1024 // 4,), value, np.float32)}, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def start_child(tmp_path: Path, phase: str, files: list[Path], env_extra: dict[str, str] | None = None
                ) -> tuple[subprocess.Popen[str], Path]:
    marker = tmp_path / "marker"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "MODELYARD_UPLOAD_WORKERS": "1", **(env_extra or {})}
    proc = subprocess.Popen([sys.executable, str(script), phase, str(marker), *map(str, files)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return proc, marker


def wait_for(marker: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child exited early: {proc.communicate()[1]}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            raise AssertionError("child never reached the phase")
        time.sleep(0.02)


def no_partials(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".modelyard-partial")]


@pytest.mark.parametrize("phase", ["started", "streaming", "committed"])
def test_r3_kill9_at_each_phase_then_resume(tmp_path: Path, phase: str) -> None:
    files = [tmp_path / "src" / "a.safetensors", tmp_path / "src" / "b.safetensors"]
    digests = [make_file(files[0], 1, 1), make_file(files[1], 24, 2)]
    proc, marker = start_child(tmp_path, phase, files)
    wait_for(marker, proc)
    proc.send_signal(signal.SIGKILL)
    model_id = proc.communicate(timeout=30)[0].split()[0]

    reset_state()  # this test process plays "the next process on this machine"
    registry = modelyard._registry.get_registry()
    rows = registry.model_versions(model_id)
    assert [r.state for r in rows] == ["ready", "uploading"]
    # No ready version lacks a verified object, and the previous good version is still served.
    model = Model.__new__(Model)
    model._registry, model._id = registry, model_id
    first_uri = rows[0].uri
    assert model.url == first_uri
    assert hashlib.sha256(Path(model.get_weights(raise_on_error=True)).read_bytes()).hexdigest() == digests[0]

    counts = modelyard.sync()
    assert counts == {"resumed": 1, "failed": 0, "pending": 0}
    (second,) = [v for v in model.versions if v.version == 2]
    assert second.state == "ready" and second.sha256 == digests[1]
    assert hashlib.sha256(Path(model.get_weights(raise_on_error=True)).read_bytes()).hexdigest() == digests[1]
    assert not files[1].exists()  # auto_delete_file: deleted only now that the upload is durable
    assert not no_partials(Path(os.environ["MODELYARD_HOME"]))


def test_r3_resume_fails_cleanly_when_the_snapshot_is_gone(tmp_path: Path) -> None:
    files = [tmp_path / "src" / "a.safetensors", tmp_path / "src" / "b.safetensors"]
    make_file(files[0], 1, 1)
    make_file(files[1], 4, 2)
    proc, marker = start_child(tmp_path, "started", files)
    wait_for(marker, proc)
    proc.send_signal(signal.SIGKILL)
    model_id = proc.communicate(timeout=30)[0].split()[0]
    staging = Path(os.environ["MODELYARD_HOME"]) / "staging"
    for folder in staging.iterdir():
        for f in folder.iterdir():
            f.unlink()
    files[1].unlink()
    reset_state()
    modelyard.sync()
    rows = modelyard._registry.get_registry().model_versions(model_id)
    assert [r.state for r in rows] == ["ready", "failed"]
    assert "gone" in rows[1].error


def test_r3_resume_is_automatic_when_the_registry_is_next_used(tmp_path: Path) -> None:
    files = [tmp_path / "src" / "a.safetensors", tmp_path / "src" / "b.safetensors"]
    make_file(files[0], 1, 1)
    make_file(files[1], 4, 2)
    proc, marker = start_child(tmp_path, "streaming", files)
    wait_for(marker, proc)
    proc.send_signal(signal.SIGKILL)
    model_id = proc.communicate(timeout=30)[0].split()[0]
    reset_state()
    task = modelyard.Task.init(project_name="p", task_name="next-run")
    out = modelyard.OutputModel(task)
    fresh = tmp_path / "src" / "c.safetensors"
    make_file(fresh, 1, 3)
    out.update_weights(str(fresh))  # any upload in a new process resumes this machine's orphans
    modelyard.OutputModel.wait_for_uploads()
    rows = modelyard._registry.get_registry().model_versions(model_id)
    assert [r.state for r in rows] == ["ready", "ready"]


def test_r4_sigterm_commits_finished_and_journals_unfinished(tmp_path: Path) -> None:
    files = [tmp_path / "src" / f"{n}.safetensors" for n in "abcd"]
    for i, f in enumerate(files):
        make_file(f, 24 if i == 1 else 2, i)  # the one in flight spans several chunks
    proc, marker = start_child(tmp_path, "streaming", files,
                               {"CHILD_SIGTERM": "1", "MODELYARD_EXIT_TIMEOUT": "1"})
    wait_for(marker, proc)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert time.monotonic() - started < 30
    model_id = stdout.split()[0]
    assert "left journaled" in stderr
    reset_state()
    registry = modelyard._registry.get_registry()
    states = [r.state for r in registry.model_versions(model_id)]
    assert states[0] == "ready" and set(states[1:]) == {"pending"}, states
    assert not no_partials(Path(os.environ["MODELYARD_HOME"]))
    assert all(f.exists() for f in files[1:])  # nothing deleted that is not durable
    modelyard.sync()
    assert [r.state for r in registry.model_versions(model_id)] == ["ready"] * len(states)


def test_r4_sigterm_chains_an_existing_handler(tmp_path: Path) -> None:
    script = tmp_path / "chain.py"
    script.write_text(textwrap.dedent("""
        import os, signal, sys, time
        import modelyard
        def previous(num, frame):
            # os.write, not print: SIGTERM can land while the main thread is still inside print("ready"), and
            # a print from the handler then fails with "reentrant call inside BufferedWriter".
            os.write(1, b"previous handler ran\\n")
        signal.signal(signal.SIGTERM, previous)
        modelyard.enable_graceful_shutdown()
        print("ready", flush=True)
        time.sleep(60)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert first == "ready", stderr
    assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, stdout, stderr)
    assert "previous handler ran" in stdout, (stdout, stderr)


def test_r5_script_ends_right_after_update_weights(tmp_path: Path) -> None:
    files = [tmp_path / "src" / "a.safetensors", tmp_path / "src" / "b.safetensors"]
    make_file(files[0], 1, 1)
    digest = make_file(files[1], 64, 2)
    proc, _ = start_child(tmp_path, "none", files)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "waiting for 1 upload" in err
    reset_state()
    rows = modelyard._registry.get_registry().model_versions(out.split()[0])
    assert [r.state for r in rows] == ["ready", "ready"]
    assert rows[1].sha256 == digest
    assert not files[1].exists()


def test_exit_timeout_bounds_the_wait_and_leaves_work_journaled(tmp_path: Path) -> None:
    files = [tmp_path / "src" / "a.safetensors", tmp_path / "src" / "b.safetensors"]
    make_file(files[0], 1, 1)
    make_file(files[1], 24, 2)
    script = tmp_path / "child.py"
    script.write_text(CHILD.replace('if phase == "none":\n    sys.exit(0)', 'sys.exit(0)'))
    env = {**os.environ, "MODELYARD_UPLOAD_WORKERS": "1", "MODELYARD_EXIT_TIMEOUT": "1"}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(script), "streaming", str(tmp_path / "m"), *map(str, files)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 30
    assert "left journaled" in proc.stderr
    reset_state()
    rows = modelyard._registry.get_registry().model_versions(proc.stdout.split()[0])
    assert [r.state for r in rows] == ["ready", "pending"]
    assert files[1].exists()
    assert _storage.check_confined(rows[0].uri, modelyard._registry.get_registry().destinations()) is None
