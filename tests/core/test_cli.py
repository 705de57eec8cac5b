"""The ``modelyard`` command: every subcommand, its JSON, its exit codes, and hostile registry strings."""

from __future__ import annotations

import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
import zipfile
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

import modelyard
from modelyard import InputModel, OutputModel, Task, _plugins, _uploads, save_safetensors
from modelyard import _terminal as term
from modelyard._cli import cli
from modelyard._registry import get_registry
from modelyard._settings import hostname
from modelyard._terminal import clean
from modelyard.testing import reset_state

REPO = Path(__file__).resolve().parents[2]
SRC = Path(modelyard.__file__).resolve().parents[1]

#: Raw terminal control characters that must never reach the terminal (newline is the line separator).
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    path = tmp_path / "home"
    monkeypatch.setenv("MODELYARD_HOME", str(path))
    for name in ("MODELYARD_REGISTRY_URL", "MODELYARD_DEFAULT_OUTPUT_URI", "MODELYARD_DISABLE_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    reset_state(plugins=_plugins.PluginManager(load_entry_points=False))
    yield path
    reset_state(plugins=_plugins.PluginManager(load_entry_points=False))


def run(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    return result


def run_json(*args: str, code: int = 0) -> Any:
    return json.loads(run(*args, "--json", code=code).stdout)


def weights(path: Path, value: float = 0.0, n: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_safetensors({"w": np.full(n, value, dtype=np.float32)}, path)
    return path


def make_model(tmp_path: Path, *, name: str = "run-1", project: str = "demo", versions: int = 2,
               tags: list[str] | None = None, **kwargs: Any) -> OutputModel:
    task = Task.init(project_name=project, task_name=name)
    model = OutputModel(task, name=name, tags=tags, **kwargs)
    for i in range(versions):
        model.update_weights(str(weights(tmp_path / f"{name}-{i}.safetensors", float(i))),
                             iteration=(i + 1) * 100, version_tags=["best"] if i == 1 else None)
    OutputModel.wait_for_uploads()
    return model


def object_path(model: Any, version: int) -> Path:
    uri = model.get_version(version).uri
    assert uri.startswith("file://")
    return Path(uri[len("file://"):])


def journal_without_upload(model: OutputModel, source: Path,
                           monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Record a pending version as a process that died before uploading would have left it."""
    with monkeypatch.context() as patch:
        patch.setattr(_uploads.UploadEngine, "submit", lambda self, job, block_timeout=None: Future())
        model.update_weights(str(source), auto_delete_file=False)
    registry = get_registry()
    row = registry.model_versions(model.id)[-1]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    registry.update_version(row.id, owner=f"{hostname()}|{dead}|1")
    return row


# -- help, version, exit codes ----------------------------------------------------------------------


def test_help_documents_every_command_and_exit_code(home: Path) -> None:
    out = run("--help").stdout
    for command in ("models", "tasks", "sync", "verify", "gc", "info", "db"):
        assert command in out
    for code in ("0  success", "1  problems found", "2  usage error", "3  not found", "4  any other error"):
        assert code in out
    models_help = run("models", "--help").stdout
    for command in ("list", "show", "get", "publish", "tag", "archive", "rm", "import"):
        assert re.search(rf"^\s+{command}\s", models_help, re.M), command
    assert "Exit codes" in models_help
    assert run("--version").stdout.strip() == f"modelyard {modelyard.__version__}"


def test_usage_errors_exit_2(home: Path) -> None:
    assert run("nope", code=2).stderr.startswith("Usage:")
    run("models", "list", "--limit", "-1", code=2)
    run("models", "import", "x", code=2)  # --name is required
    run("models", "tag", "0" * 32, code=2)  # nothing to add or remove


def test_not_found_exits_3_with_one_line_and_no_traceback(home: Path) -> None:
    for args in (["models", "show", "f" * 32], ["models", "get", "f" * 32], ["models", "publish", "nope"],
                 ["models", "rm", "nope"], ["models", "archive", "nope"], ["tasks", "show", "nope"],
                 ["verify", "nope"], ["models", "tag", "nope", "--add", "x"]):
        result = run(*args, code=3)
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: "), result.stderr
        assert "Traceback" not in result.stderr


def test_unexpected_errors_exit_4_with_a_traceback(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr("modelyard._registry.Registry.query_models", boom)
    result = run("models", "list", code=4)
    assert "Traceback" in result.stderr and "kaboom" in result.stderr and "bug in modelyard" in result.stderr


def test_registry_errors_exit_4_in_one_line(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "a-file").write_text("not a folder")
    monkeypatch.setenv("MODELYARD_REGISTRY_URL", f"sqlite:///{home}/a-file/registry.db")
    reset_state(plugins=_plugins.PluginManager(load_entry_points=False))
    result = run("models", "list", code=4)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


# -- models list / show -----------------------------------------------------------------------------


def test_models_list_filters_and_json(home: Path, tmp_path: Path) -> None:
    a = make_model(tmp_path, name="alpha", project="vision", versions=1, tags=["baseline", "resnet"])
    b = make_model(tmp_path, name="beta", project="vision", versions=1, tags=["resnet"])
    c = make_model(tmp_path, name="gamma", project="nlp", versions=0)
    b.publish()
    c.archive()

    listed = run_json("models", "list")
    assert [m["id"] for m in listed] == [b.id, a.id]  # newest first; archived hidden
    first = listed[0]
    assert set(first) == {"id", "name", "project", "task_id", "framework", "tags", "system_tags", "published",
                          "archived", "version_count", "created", "updated"}
    assert first["published"] is True and first["version_count"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["created"])

    assert [m["id"] for m in run_json("models", "list", "--archived")] == [c.id, b.id, a.id]
    assert [m["id"] for m in run_json("models", "list", "--project", "vision")] == [b.id, a.id]
    assert [m["id"] for m in run_json("models", "list", "--name", "alpha")] == [a.id]
    assert [m["id"] for m in run_json("models", "list", "--tag", "resnet", "--tag", "baseline")] == [a.id]
    assert [m["id"] for m in run_json("models", "list", "--tag=-baseline")] == [b.id]
    assert [m["id"] for m in run_json("models", "list", "--published")] == [b.id]
    assert [m["id"] for m in run_json("models", "list", "--limit", "1")] == [b.id]

    text = run("models", "list").stdout
    assert "ID" in text and "NAME" in text
    assert re.search(rf"{b.id}\s+vision\s+beta\s+resnet\s+published\s+1\s", text)
    assert c.id not in text

    empty = run("models", "list", "--project", "none")
    assert empty.stdout == "" and "no models match" in empty.stderr
    assert run_json("models", "list", "--project", "none") == []


def test_models_show_everything(home: Path, tmp_path: Path) -> None:
    model = make_model(tmp_path, config_dict={"lr": 0.1, "layers": [64, 32]},
                       label_enumeration={"background": 0, "person": 1}, tags=["baseline"],
                       comment="first try\nsecond line", framework="pytorch")
    registry = get_registry()
    failed = registry.add_version(model.id, iteration=300, uri="file:///nowhere/x", file_name="x",
                                  package_format=None, size=None, sha256=None, state="failed",
                                  error="PermissionError: denied", tags=[], meta={}, pinned=False, job=None,
                                  owner=None, host=None)
    data = run_json("models", "show", model.id)
    assert data["id"] == model.id and data["name"] == "run-1" and data["project"] == "demo"
    assert data["framework"] == "pytorch" and data["tags"] == ["baseline"]
    assert data["labels"] == {"background": 0, "person": 1}
    assert data["config"] == {"lr": 0.1, "layers": [64, 32]} and '"lr": 0.1' in data["config_text"]
    assert data["comment"].startswith("first try\nsecond line")
    assert data["url"] == model.get_version(2).uri
    versions = data["versions"]
    assert [v["version"] for v in versions] == [1, 2, 3]
    v2 = versions[1]
    mv = model.get_version(2)
    assert (v2["iteration"], v2["state"], v2["size"], v2["sha256"], v2["uri"], v2["tags"]) == \
        (200, "ready", mv.size, mv.sha256, mv.uri, ["best"])
    assert versions[2]["state"] == "failed" and versions[2]["error"] == "PermissionError: denied"
    assert failed.version == 3

    text = run("models", "show", model.id).stdout
    for expected in (model.id, "run-1", "demo", "pytorch", "baseline", "background", "person", '"lr": 0.1',
                     mv.sha256, mv.uri, "iteration 200", f"{mv.size} bytes", "best", "failed",
                     "PermissionError: denied", "  first try", "  second line"):
        assert expected in text, expected


# -- models get -------------------------------------------------------------------------------------


def test_models_get_downloads_and_verifies(home: Path, tmp_path: Path) -> None:
    model = make_model(tmp_path)
    out = tmp_path / "out"
    result = run("models", "get", model.id, "-o", str(out))
    path = Path(result.stdout.strip())
    assert path == out / "run-1-1.safetensors"
    assert path.read_bytes() == object_path(model, 2).read_bytes()
    assert "verified" in result.stderr

    old = Path(run("models", "get", model.id, "-o", str(tmp_path / "v1"), "--version", "1").stdout.strip())
    assert old.read_bytes() == object_path(model, 1).read_bytes()

    again = run("models", "get", model.id, "-o", str(out), code=4)
    assert "already exists" in again.stderr
    run("models", "get", model.id, "--version", "9", code=3)


def test_models_get_needs_a_ready_version(home: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model(tmp_path, versions=0)
    assert "no ready weights version" in run("models", "get", model.id, code=3).stderr
    journal_without_upload(model, weights(tmp_path / "w.safetensors"), monkeypatch)
    assert "is pending, not ready" in run("models", "get", model.id, "--version", "1", code=3).stderr


def test_models_get_refuses_corrupt_objects_and_leaves_nothing(home: Path, tmp_path: Path) -> None:
    model = make_model(tmp_path, versions=1)
    stored = object_path(model, 1)
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0xFF
    stored.write_bytes(bytes(data))
    out = tmp_path / "out"
    result = run("models", "get", model.id, "-o", str(out), code=4)
    assert "sha256" in result.stderr and "Traceback" not in result.stderr
    assert list(out.iterdir()) == []


def test_models_get_refuses_a_uri_outside_the_destinations(home: Path, tmp_path: Path) -> None:
    model = make_model(tmp_path, versions=1)
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    registry = get_registry()
    registry.update_version(registry.model_versions(model.id)[0].id, uri=f"file://{secret}")
    out = tmp_path / "out"
    result = run("models", "get", model.id, "-o", str(out), code=4)
    assert "outside every destination" in result.stderr
    assert not out.exists() or list(out.iterdir()) == []


def test_models_get_packages(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bundle"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "sub" / "weights.bin").write_bytes(b"\x00" * 1000)
    task = Task.init(project_name="demo", task_name="pkg")
    model = OutputModel(task, name="pkg")
    model.update_weights_package(weights_path=str(folder), auto_delete_file=False)
    archive = tmp_path / "zipped.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("model.safetensors", b"abc")
        zf.writestr("tokenizer/vocab.txt", "a\nb\n")
    zipped = OutputModel(task, name="zipped")
    zipped.update_weights(str(archive), is_package=True, auto_delete_file=False)
    OutputModel.wait_for_uploads()

    out = tmp_path / "out"
    got = Path(run("models", "get", model.id, "-o", str(out)).stdout.strip())
    assert got == out / "bundle"
    assert sorted(p.relative_to(got).as_posix() for p in got.rglob("*") if p.is_file()) == \
        ["config.json", "sub/weights.bin"]
    assert (got / "sub" / "weights.bin").read_bytes() == b"\x00" * 1000

    extracted = Path(run("models", "get", zipped.id, "-o", str(out)).stdout.strip())
    assert extracted == out / "zipped"
    assert (extracted / "tokenizer" / "vocab.txt").read_text() == "a\nb\n"
    assert sorted(p.name for p in out.iterdir()) == ["bundle", "zipped"]  # no partial folders left

    member = Path(model.get_version(1).uri[len("file://"):]) / "sub" / "weights.bin"
    member.write_bytes(b"\x01" * 1000)
    result = run("models", "get", model.id, "-o", str(tmp_path / "out2"), code=4)
    assert "sha256" in result.stderr
    assert list((tmp_path / "out2").iterdir()) == []


def test_models_get_draws_progress_on_a_terminal(home: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model(tmp_path, versions=1)
    original = term.console

    def terminal(stderr: bool = False) -> Any:
        console = original(stderr)
        if stderr:
            console._force_terminal = True  # what rich decides from isatty() on a real terminal
        return console

    monkeypatch.setattr(term, "console", terminal)
    result = run("models", "get", model.id, "-o", str(tmp_path / "out"))
    assert Path(result.stdout.strip()).read_bytes() == object_path(model, 1).read_bytes()
    assert "\x1b[" in result.stderr  # the bar was drawn (and erased: transient)


# -- publish, tag, archive, rm, import --------------------------------------------------------------


def test_publish(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model(tmp_path, versions=1)
    seen: list[str] = []

    class Listener:
        @_plugins.hookspecs.hookimpl
        def modelyard_after_publish(self, model: Any) -> None:
            seen.append(model.id)

    _plugins.get_plugin_manager().register(Listener())
    assert "published model" in run("models", "publish", model.id).stderr
    assert run_json("models", "show", model.id)["published"] is True
    assert seen == [model.id]
    assert "already published" in run("models", "publish", model.id).stderr
    assert seen == [model.id]

    busy = make_model(tmp_path, name="busy", versions=0)
    journal_without_upload(busy, weights(tmp_path / "w.safetensors"), monkeypatch)
    result = run("models", "publish", busy.id, code=4)
    assert "in progress" in result.stderr and "modelyard sync" in result.stderr
    assert run_json("models", "show", busy.id)["published"] is False


def test_tag(home: Path, tmp_path: Path) -> None:
    model = make_model(tmp_path, versions=0, tags=["a", "b"])
    result = run("models", "tag", model.id, "--add", "c", "--add", "a", "--remove", "b")
    assert result.stdout.strip() == "a, c"
    assert run_json("models", "show", model.id)["tags"] == ["a", "c"]
    assert [m["id"] for m in run_json("models", "list", "--tag", "c")] == [model.id]
    model.publish()
    assert "published" in run("models", "tag", model.id, "--add", "d", code=4).stderr


def test_archive_and_undo(home: Path, tmp_path: Path) -> None:
    model = make_model(tmp_path, versions=0)
    run("models", "archive", model.id)
    assert run_json("models", "list") == []
    shown = run_json("models", "show", model.id)
    assert shown["archived"] is True and "archived" in shown["system_tags"]
    run("models", "archive", model.id, "--undo")
    assert [m["id"] for m in run_json("models", "list")] == [model.id]


def test_rm(home: Path, tmp_path: Path) -> None:
    model = make_model(tmp_path, versions=2)
    stored = [object_path(model, 1), object_path(model, 2)]
    run("models", "rm", model.id)
    assert run_json("models", "list", "--archived") == []
    assert not any(p.exists() for p in stored)

    published = make_model(tmp_path, name="kept", versions=1)
    published.publish()
    assert "--force" in run("models", "rm", published.id, code=4).stderr
    stored = [object_path(published, 1)]
    run("models", "rm", published.id, "--force", "--keep-files")
    run("models", "show", published.id, code=3)
    assert stored[0].exists()


def test_rm_refuses_a_model_with_uploads_in_progress(home: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model(tmp_path, versions=0)
    journal_without_upload(model, weights(tmp_path / "w.safetensors"), monkeypatch)
    assert "in progress" in run("models", "rm", model.id, code=4).stderr
    run("models", "rm", model.id, "--force")
    run("models", "show", model.id, code=3)


def test_import(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = weights(tmp_path / "external" / "resnet.safetensors", 3.0)
    config = tmp_path / "config.yaml"
    config.write_text("lr: 0.01\nepochs: 3\n")
    monkeypatch.chdir(tmp_path)
    result = run("models", "import", "external/resnet.safetensors", "--name", "resnet",
                 "--project", "imported",
                 "--label", "cat=0", "--label", "dog=1", "--label", "a=b=2", "--config", str(config),
                 "--tag", "external", "--published")
    model_id = result.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", model_id)
    data = run_json("models", "show", model_id)
    assert data["name"] == "resnet" and data["project"] == "imported" and data["published"] is True
    assert data["labels"] == {"cat": 0, "dog": 1, "a=b": 2}
    assert data["config_text"] == "lr: 0.01\nepochs: 3\n" and data["config"] == {"lr": 0.01, "epochs": 3}
    assert data["tags"] == ["external"]
    assert data["versions"][0]["uri"] == f"file://{source}"
    assert data["versions"][0]["size"] == source.stat().st_size
    got = Path(run("models", "get", model_id, "-o", str(tmp_path / "out")).stdout.strip())
    assert got.read_bytes() == source.read_bytes()

    assert "NAME=ID" in run("models", "import", str(source), "--name", "x", "--label", "cat", code=2).stderr
    assert "not an integer" in run("models", "import", str(source), "--name", "x", "--label", "cat=one",
                                   code=2).stderr
    assert "twice" in run("models", "import", str(source), "--name", "x", "--label", "c=0", "--label", "c=1",
                          code=4).stderr
    assert "share the id" in run("models", "import", str(source), "--name", "x", "--label", "c=0",
                                 "--label", "d=0", code=4).stderr
    assert "nothing exists" in run("models", "import", "typo.safetensors", "--name", "x", code=4).stderr
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe")
    assert "UTF-8" in run("models", "import", str(source), "--name", "x", "--config", str(bad), code=4).stderr


# -- tasks ------------------------------------------------------------------------------------------


def test_tasks_list_and_show(home: Path, tmp_path: Path) -> None:
    model = make_model(tmp_path, name="run-1", project="vision", versions=1)
    other = make_model(tmp_path, name="run-2", project="nlp", versions=0)
    consumer = Task.init(project_name="vision", task_name="eval")
    InputModel(model.id).connect(consumer)
    task_id, other_task = model.task, other.task

    listed = run_json("tasks", "list")
    assert [t["name"] for t in listed] == ["eval", "run-2", "run-1"]
    assert set(listed[0]) == {"id", "project", "name", "status", "output_uri", "tags", "created", "updated"}
    assert [t["name"] for t in run_json("tasks", "list", "--project", "vision")] == ["eval", "run-1"]
    assert len(run_json("tasks", "list", "--limit", "1")) == 1
    assert re.search(r"run-2\s+in_progress", run("tasks", "list").stdout)

    shown = run_json("tasks", "show", task_id)
    assert shown["id"] == task_id and shown["project"] == "vision"
    assert shown["models"] == [{"role": "output", "model_id": model.id, "link_name": None,
                                "model_name": "run-1", "exists": True}]
    assert run_json("tasks", "show", consumer.id)["models"][0]["role"] == "input"
    assert "run-2" in run("tasks", "show", other_task).stdout
    run("models", "rm", other.id)
    assert run_json("tasks", "show", other_task)["models"] == []
    assert "models (0)" in run("tasks", "show", other_task).stdout


# -- sync, verify, gc -------------------------------------------------------------------------------


def test_sync_finishes_a_dead_process_upload(home: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model(tmp_path, versions=0)
    source = weights(tmp_path / "w.safetensors", 7.0)
    journal_without_upload(model, source, monkeypatch)
    assert run_json("models", "show", model.id)["versions"][0]["state"] == "pending"
    assert run_json("sync") == {"resumed": 1, "failed": 0, "pending": 0, "finished": 1}
    version = run_json("models", "show", model.id)["versions"][0]
    assert version["state"] == "ready"
    idle = "took over 0 journaled upload(s): 0 finished, 0 failed, 0 still running"
    assert run("sync").stdout.strip() == idle


def test_sync_exits_1_when_a_resumed_upload_fails(home: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model(tmp_path, versions=0)
    row = journal_without_upload(model, weights(tmp_path / "w.safetensors"), monkeypatch)
    for item in row.job["files"]:
        os.unlink(item["source"])  # the snapshot is gone: nothing to finish the upload from
    result = run("sync", code=1)
    assert result.stdout.strip() == "took over 1 journaled upload(s): 0 finished, 1 failed, 0 still running"
    version = run_json("models", "show", model.id)["versions"][0]
    assert version["state"] == "failed" and "gone" in version["error"]


def test_verify_clean_registry(home: Path, tmp_path: Path) -> None:
    model = make_model(tmp_path, versions=2)
    report = run_json("verify")
    assert report["ok"] is True and report["versions"] == 2 and report["objects"] == 2
    assert report["bytes"] == sum(object_path(model, v).stat().st_size for v in (1, 2))
    assert report["problems"] == [] and report["orphans"] == []
    assert "0 problem(s), 0 orphan(s)" in run("verify").stdout
    assert run_json("verify", model.id)["versions"] == 2


def test_verify_reports_drift_both_ways(home: Path, tmp_path: Path) -> None:
    corrupt = make_model(tmp_path, name="corrupt", versions=2)
    missing = make_model(tmp_path, name="missing", versions=1)
    removed = make_model(tmp_path, name="removed", versions=1)
    tampered = make_model(tmp_path, name="tampered", versions=1)
    path = object_path(corrupt, 1)
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # same size, different bytes
    object_path(missing, 1).unlink()
    orphans = [object_path(removed, 1), object_path(tampered, 1)]
    run("models", "rm", removed.id, "--keep-files")
    registry = get_registry()
    # A row pointing outside the destinations is refused, and the object it used to reference is orphaned.
    registry.update_version(registry.model_versions(tampered.id)[0].id, uri="file:///etc/passwd")

    report = run_json("verify", code=1)
    assert report["ok"] is False
    kinds = sorted((p["kind"], p["model_id"], p["version"]) for p in report["problems"])
    assert kinds == sorted([("corrupt", corrupt.id, 1), ("missing", missing.id, 1),
                            ("refused", tampered.id, 1)])
    assert report["orphans"] == sorted(({"uri": f"file://{p}", "size": p.stat().st_size} for p in orphans),
                                       key=lambda o: o["uri"])

    text = run("verify", code=1)
    assert "corrupt" in text.stdout and "missing" in text.stdout and "refused" in text.stdout
    assert all(str(p) in text.stdout for p in orphans) and "modelyard gc" in text.stderr

    scoped = run_json("verify", corrupt.id, code=1)
    assert [p["kind"] for p in scoped["problems"]] == ["corrupt"] and scoped["orphans"] == []
    ok = make_model(tmp_path, name="fine", versions=1)
    assert run_json("verify", ok.id)["ok"] is True


def test_verify_checks_every_package_member(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"a" * 10)
    (folder / "b.bin").write_bytes(b"b" * 20)
    task = Task.init(project_name="demo", task_name="pkg")
    model = OutputModel(task, name="pkg")
    model.update_weights_package(weights_path=str(folder), auto_delete_file=False)
    OutputModel.wait_for_uploads()
    assert run_json("verify")["objects"] == 3  # manifest and two members
    base = Path(model.get_version(1).uri[len("file://"):])
    (base / "a.bin").write_bytes(b"x" * 10)
    (base / "b.bin").unlink()
    problems = run_json("verify", code=1)["problems"]
    assert sorted((p["kind"], p["uri"].rsplit("/", 1)[-1]) for p in problems) == \
        [("corrupt", "a.bin"), ("missing", "b.bin")]


def test_gc_dry_run_then_removal(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keep = make_model(tmp_path, name="keep", versions=1)
    gone = make_model(tmp_path, name="gone", versions=2)
    orphans = [object_path(gone, 1), object_path(gone, 2)]
    run("models", "rm", gone.id, "--keep-files")
    storage = home / "storage"
    user_file = storage / "notes.txt"  # not in modelyard's layout: never an orphan
    user_file.write_text("mine")
    busy = make_model(tmp_path, name="busy", versions=0)
    row = journal_without_upload(busy, weights(tmp_path / "w.safetensors"), monkeypatch)
    partial = Path(row.uri[len("file://"):]).parent / ".w.safetensors.0123456789ab.modelyard-partial"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"in flight")  # an upload in progress owns its version folder

    dry = run_json("gc")
    assert dry["removed"] is False and dry["count"] == 2
    assert [o["uri"] for o in dry["orphans"]] == sorted(f"file://{p}" for p in orphans)
    text = run("gc").stdout
    assert "would be removed" in text and "gc --yes" in text
    assert all(p.exists() for p in orphans)

    done = run("gc", "--yes").stdout
    assert "removed 2 orphan object(s)" in done
    assert not any(p.exists() for p in orphans) and not orphans[0].parent.exists()
    assert user_file.exists() and partial.exists() and object_path(keep, 1).exists()
    assert run("gc").stdout.strip() == "no orphan objects"
    assert run_json("verify", keep.id)["ok"] is True


def test_verify_and_gc_fail_loudly_on_a_destination_they_cannot_list(home: Path, tmp_path: Path) -> None:
    make_model(tmp_path, versions=1)
    get_registry().record_destination("nosuchscheme://bucket/models")
    for args in (["verify"], ["gc"]):
        result = run(*args, code=4)
        assert "nosuchscheme" in result.stderr and result.stderr.count("\n") == 1


# -- info, db upgrade -------------------------------------------------------------------------------


def test_info(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Plugin:
        @_plugins.hookspecs.hookimpl
        def modelyard_register_integrations(self, register: Any) -> None:
            register("toy", "toy_module:Callback", package="modelyard")

    _plugins.get_plugin_manager().register(Plugin(), name="toy-plugin")
    make_model(tmp_path, versions=1)
    monkeypatch.setenv("MODELYARD_DEFAULT_OUTPUT_URI", str(tmp_path / "dest"))
    data = run_json("info")
    assert data["modelyard"] == modelyard.__version__
    assert data["home"] == str(home)
    assert data["registry"] == f"sqlite:///{home}/registry.db"
    assert data["schema_version"] == 2
    assert data["default_destination"] == f"file://{tmp_path}/dest"
    assert data["destinations"] == [f"file://{home}/storage"]
    assert data["integrations"] == [{"name": "toy", "package": "modelyard", "version": modelyard.__version__,
                                     "plugin": "toy-plugin"}]
    assert data["errors"] == []
    text = run("info").stdout
    assert "toy" in text and f"file://{tmp_path}/dest" in text and "schema version" in text


def test_info_hides_the_registry_password(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_REGISTRY_URL", "postgresql+nosuchdriver://alice:s3cr3t@db.example/models")
    reset_state(plugins=_plugins.PluginManager(load_entry_points=False))
    result = run("info", "--json", code=4)
    data = json.loads(result.stdout)
    assert data["registry"] == "postgresql+nosuchdriver://alice:***@db.example/models"
    assert data["errors"] and "s3cr3t" not in result.stdout + result.stderr
    text = run("info", code=4)
    assert "alice:***@db.example" in text.stdout and "s3cr3t" not in text.stdout + text.stderr


def test_db_upgrade(home: Path) -> None:
    assert run("db", "current").stdout.strip().endswith("is not stamped (empty, or not opened since modelyard 0.1); "
                                                        "`modelyard db upgrade` stamps it")
    assert not (home / "registry.db").exists()  # `db current` changes nothing, not even creating the file
    out = run("db", "upgrade").stdout
    assert out.strip() == f"registry sqlite:///{home}/registry.db is at revision 0001"
    assert run("db", "current").stdout.strip() == (
        f"registry sqlite:///{home}/registry.db is at revision 0001 (this modelyard's head)")
    db = sqlite3.connect(home / "registry.db")
    with db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    db.close()
    reset_state(plugins=_plugins.PluginManager(load_entry_points=False))
    result = run("db", "upgrade", code=4)
    assert "9999" in result.stderr and "pip install -U modelyard" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_upgrade_sql_prints_the_ddl_without_connecting(home: Path, monkeypatch) -> None:
    sql = run("db", "upgrade", "--sql").stdout
    for table in ("tasks", "models", "model_tags", "versions", "task_models", "destinations", "modelyard_meta"):
        assert f"CREATE TABLE {table} " in sql, table
    assert "INSERT INTO alembic_version (version_num) VALUES ('0001')" in sql
    assert not (home / "registry.db").exists()
    # A PostgreSQL URL renders PostgreSQL's DDL, without a server or even its driver being reachable.
    monkeypatch.setenv("MODELYARD_REGISTRY_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    pg = run("db", "upgrade", "--sql").stdout
    assert "CREATE STATISTICS" in pg and "BEGIN;" in pg


def test_commands_on_each_registry_backend(home: Path, registry_backend: str, tmp_path: Path) -> None:
    """The commands teams run against a shared PostgreSQL registry behave as on the embedded SQLite one."""
    reset_state(plugins=_plugins.PluginManager(load_entry_points=False))
    model = make_model(tmp_path, versions=2, tags=["baseline"])
    gone = make_model(tmp_path, name="gone", versions=1)
    stale = object_path(gone, 1)
    assert [m["id"] for m in run_json("models", "list", "--tag", "baseline")] == [model.id]
    assert [v["state"] for v in run_json("models", "show", model.id)["versions"]] == ["ready", "ready"]
    got = Path(run("models", "get", model.id, "-o", str(tmp_path / "out")).stdout.strip())
    assert got.read_bytes() == object_path(model, 2).read_bytes()
    run("models", "publish", model.id)
    run("models", "rm", gone.id, "--keep-files")
    assert run_json("verify", code=1)["orphans"] == [{"uri": f"file://{stale}", "size": stale.stat().st_size}]
    run("gc", "--yes")
    assert run_json("verify")["ok"] is True
    info = run_json("info")
    assert info["schema_version"] == 2
    upgraded = run("db", "upgrade").stdout
    assert upgraded.strip().endswith("is at revision 0001")
    if registry_backend == "postgres":
        assert info["registry"].startswith("postgresql+psycopg://modelyard:***@")
        assert ":modelyard@" not in upgraded and ":***@" in upgraded


# -- hostile strings --------------------------------------------------------------------------------

HOSTILE = ["\x1b[31mred\x1b[0m", "[red]x[/red]", "line\nbreak", "\x9b2J", "rtl\u202eevil", "x" * 10_000,
           "bell\x07", "[link=file:///etc/passwd]click[/link]"]


def assert_terminal_safe(result: Result) -> None:
    for stream in (result.stdout, result.stderr):
        assert not RAW_CONTROL.search(stream), repr(RAW_CONTROL.search(stream))


def test_clean_escapes_controls_and_keeps_markup_literal() -> None:
    assert clean("\x1b[31mred") == "\\x1b[31mred"
    assert clean("a\nb\tc\rd") == "a\\nb\\tc\\rd"
    assert clean("\x9b\x00\x7f") == "\\x9b\\x00\\x7f"
    assert clean("rtl\u202eevil\u2066") == "rtl\\u202eevil\\u2066"
    assert clean("lone\udc80") == "lone\\udc80"
    assert clean("[red]x[/red] café 模型") == "[red]x[/red] café 模型"
    assert clean(clean("\x1b")) == clean("\x1b")


def test_s10_hostile_registry_strings_are_escaped_everywhere(home: Path, tmp_path: Path) -> None:
    task = Task.init(project_name=HOSTILE[0], task_name=HOSTILE[2])
    model = OutputModel(task, name="\n".join(HOSTILE), tags=HOSTILE, comment="\n".join(HOSTILE),
                        config_text="\n".join(HOSTILE), label_enumeration={"[red]x[/red]": 0, "safe": 1})
    model.update_weights(str(weights(tmp_path / "w.safetensors")), version_tags=HOSTILE[:3])
    OutputModel.wait_for_uploads()
    registry = get_registry()
    # A tampered registry: values the API refuses (NUL, controls in labels, non-list tags) reach the CLI too.
    registry.update_model(model.id, labels={"\x1b]0;pwned\x07": 2, "a\x00b": 3}, system_tags="\x1b[5m",
                          framework="\x9b31m")
    row = registry.model_versions(model.id)[0]
    registry.update_version(row.id, error="\x1b[2Jerror\nline", meta={"k": "\x1b[1m"})

    for args in (["models", "list"], ["models", "show", model.id], ["tasks", "list"],
                 ["tasks", "show", task.id], ["verify"], ["info"]):
        result = run(*args)
        assert_terminal_safe(result)
        if args[:2] == ["models", "show"]:
            out = result.stdout
            assert "[red]x[/red]" in out and "[link=file:///etc/passwd]click[/link]" in out
            assert "\\x1b[31mred\\x1b[0m" in out and "\\x9b2J" in out and "rtl\\u202eevil" in out
            assert "line\\nbreak" in out and "x" * 10_000 in out.replace("\n", "").replace(" ", "")
            assert "\\x1b]0;pwned\\x07" in out and "a\\x00b" in out and "\\x1b[2Jerror\\nline" in out
        if args == ["models", "list"]:
            assert "[red]x[/red]" in result.stdout and "…" in result.stdout  # 10 kB name shortened

    data = run_json("models", "show", model.id)
    assert data["name"] == "\n".join(HOSTILE) and data["tags"] == HOSTILE
    assert data["versions"][0]["error"] == "\x1b[2Jerror\nline"
    for args in (["models", "list"], ["tasks", "list"], ["tasks", "show", task.id]):
        assert_terminal_safe(run(*args, "--json"))
    assert json.loads(run("tasks", "show", task.id, "--json").stdout)["project"] == HOSTILE[0]

    out = tmp_path / "out"
    got = run("models", "get", model.id, "-o", str(out))
    assert_terminal_safe(got)


def test_hostile_ids_in_errors_are_escaped(home: Path) -> None:
    for hostile in HOSTILE:
        result = run("models", "show", hostile, code=3)
        assert_terminal_safe(result)
        assert result.stderr.count("\n") == 1


# -- a real process ---------------------------------------------------------------------------------


def _subprocess(*args: str, home: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELYARD_HOME": str(home), "PYTHONPATH": str(SRC)}
    env.pop("MODELYARD_REGISTRY_URL", None)
    return subprocess.run([sys.executable, "-m", "modelyard", *args], capture_output=True, text=True, env=env,
                          timeout=120, **kwargs)


def test_python_dash_m_modelyard(home: Path, tmp_path: Path) -> None:
    model = make_model(tmp_path, versions=1)
    listed = _subprocess("models", "list", "--json", home=home)
    assert listed.returncode == 0, listed.stderr
    assert [m["id"] for m in json.loads(listed.stdout)] == [model.id]
    missing = _subprocess("models", "show", "f" * 32, home=home)
    assert missing.returncode == 3
    assert missing.stdout == "" and missing.stderr.count("\n") == 1 and "Traceback" not in missing.stderr
    usage = _subprocess("models", "list", "--bogus", home=home)
    assert usage.returncode == 2
    got = _subprocess("models", "get", model.id, "-o", str(tmp_path / "out"), home=home)
    assert got.returncode == 0 and Path(got.stdout.strip()).read_bytes() == object_path(model, 1).read_bytes()


class _ClosedPipe:
    """A stdout whose reader went away."""

    def write(self, data: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError("no file descriptor")


def test_a_closed_pipe_ends_quietly(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_model(tmp_path, versions=1)
    original = term.console

    def closed(stderr: bool = False) -> Any:
        console = original(stderr)
        if not stderr:
            console.file = _ClosedPipe()  # type: ignore[assignment]
        return console

    monkeypatch.setattr(term, "console", closed)
    result = run("models", "list", code=141)
    assert "Traceback" not in result.stderr and "Error" not in result.stderr


# -- docs/cli.md runs as written --------------------------------------------------------------------

DOC_TASK = "3b0c7e55a91f4d2e8c6a1f0b9d4e2a77"
DOC_MODEL = "8f14e45fceea467a9c4d5b7e2a1c3d90"
DOC_FINETUNED = "c9f0f895fb984c1e8a7d3b2e6f5a4c01"
DOC_SCRATCH = "45c48cce2e2d47fbb1e0d5c3a9f8e712"


def _doc_commands() -> list[str]:
    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"^```console\n(.*?)^```", text, re.M | re.S):
        commands += [line[2:] for line in block.splitlines() if line.startswith("$ ")]
    return commands


def _prepare_doc_registry(tmp_path: Path) -> None:
    registry = get_registry()
    registry.insert_task(id=DOC_TASK, project="vision", name="resnet-baseline", status="completed",
                         output_uri=None, tags=[])
    task = Task(DOC_TASK)
    for model_id, name, versions, tags in ((DOC_MODEL, "resnet50", 2, ["baseline"]),
                                           (DOC_FINETUNED, "resnet50-finetuned", 1, ["candidate"]),
                                           (DOC_SCRATCH, "scratch", 1, [])):
        registry.insert_model(id=model_id, task_id=DOC_TASK, project="vision", name=name, comment="",
                              framework="pytorch", config_text=None, labels=None, tags=tags, system_tags=[],
                              published=False, archived=False, base_model_id=None, upload_uri=None,
                              version_count=0)
        model = OutputModel(task, base_model_id=model_id, config_dict={"lr": 0.1, "epochs": 20},
                            label_enumeration={"cat": 0, "dog": 1})
        for i in range(versions):
            model.update_weights(str(weights(tmp_path / "model.safetensors", float(i))),
                                 iteration=(i + 1) * 1000,
                                 version_tags=["best"] if i == versions - 1 else None)
    OutputModel.wait_for_uploads()
    (tmp_path / "weights").mkdir()
    weights(tmp_path / "weights" / "resnet50.safetensors", 5.0)
    (tmp_path / "config.yaml").write_text("lr: 0.01\nepochs: 3\n")


def test_every_example_in_docs_cli_md_runs(home: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    commands = _doc_commands()
    assert len(commands) >= 20
    documented = {" ".join(shlex.split(c)[1:3]) for c in commands}
    for command in ("models list", "models show", "models get", "models publish", "models tag",
                    "models archive", "models rm", "models import", "tasks list", "tasks show", "db upgrade"):
        assert command in documented, command
    for command in ("sync", "verify", "gc", "info"):
        assert any(shlex.split(c)[1] == command for c in commands), command
    monkeypatch.chdir(tmp_path)
    _prepare_doc_registry(tmp_path)
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "modelyard", command
        result = CliRunner().invoke(cli, argv[1:], catch_exceptions=False)
        assert result.exit_code == 0, (command, result.stdout, result.stderr)


def test_registry_configuration_errors_name_the_variable_and_the_fix(home: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """#13 item 17: a mistyped setting is a one-line error naming the variable and the fix, never a raw one."""
    monkeypatch.setenv("MODELYARD_REGISTRY_URL", "bogus")
    reset_state(plugins=_plugins.PluginManager(load_entry_points=False))
    result = run("models", "list", code=4)
    assert "MODELYARD_REGISTRY_URL='bogus' is not a database URL" in result.stderr
    assert "unset MODELYARD_REGISTRY_URL" in result.stderr and "ArgumentError" not in result.stderr
    monkeypatch.delenv("MODELYARD_REGISTRY_URL")
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    monkeypatch.setenv("MODELYARD_HOME", str(a_file))
    reset_state(plugins=_plugins.PluginManager(load_entry_points=False))
    result = run("models", "list", code=4)
    assert f"MODELYARD_HOME={str(a_file)!r} is not a folder" in result.stderr
    assert "File exists: " not in result.stderr.replace("(File exists)", "")
