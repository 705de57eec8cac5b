"""Everything read back from the registry is untrusted (RELIABILITY.md S7, S9, S10).

Rows are changed the way someone sharing the registry would change them: with SQL, behind modelyard's back.
The promises: a tampered row never changes which loader runs (format comes from magic bytes only), never
makes modelyard read, write or delete outside the destinations it wrote to, and user strings are data,
never paths.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

import modelyard
from modelyard import InputModel, Model, OutputModel, Task, _storage, _uploads
from modelyard._cli import cli
from modelyard._errors import DestinationError, IntegrityError, InvalidArgumentError, UnsafeFormatError
from modelyard._registry import get_registry
from modelyard._settings import hostname

# -- helpers ------------------------------------------------------------------------------------------


def tamper(table: str, row_id: Any, **fields: Any) -> None:
    """Change a registry row with raw SQL, as a hand edit (or a hostile teammate) would."""
    registry = get_registry()
    assignments = ", ".join(f"{name} = :{name}" for name in fields)
    with registry.engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {table} SET {assignments} WHERE id = :row_id"),
                     {**fields, "row_id": row_id})


def version_id(model_id: str, number: int = 1) -> int:
    return next(r.id for r in get_registry().model_versions(model_id) if r.version == number)


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink())


class _Canary:
    """Unpickling this creates a folder: it appears only if some code path unpickles the payload."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


class _Spy:
    """An fsspec filesystem wrapper that logs every call made with a path."""

    def __init__(self, fs: Any, protocol: str, log: list[tuple[str, str, str]]) -> None:
        self._fs, self._protocol, self._log = fs, protocol, log

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._fs, name)
        if not callable(attr):
            return attr

        def logged(*args: Any, **kwargs: Any) -> Any:
            if args and isinstance(args[0], str):
                self._log.append((self._protocol, name, args[0]))
            return attr(*args, **kwargs)

        return logged


@pytest.fixture
def storage_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """Log every storage call modelyard makes (protocol, method, path) for the rest of the test."""
    log: list[tuple[str, str, str]] = []
    real = _storage.filesystem
    spy = lambda protocol: _Spy(real(protocol), protocol, log)  # noqa: E731
    for module in (_storage, _storage.uris):  # the facade, and the module the storage layer calls through
        monkeypatch.setattr(module, "filesystem", spy)
    return log


def uploaded_model(dest: Path, source: Path, *, name: str = "victim", project: str = "p") -> OutputModel:
    task = Task.init(project_name=project, task_name="t", output_uri=str(dest))
    out = OutputModel(task, name=name)
    out.update_weights(str(source), auto_delete_file=False)
    OutputModel.wait_for_uploads()
    return out


# -- S9: a row whose URI points outside the destinations ----------------------------------------------


def _hostile_uris(dest: Path, canary: Path) -> dict[str, str]:
    d = f"file://{dest}"
    return {
        "etc-passwd": "file:///etc/passwd",
        "absolute-file-uri": f"file://{canary}",
        "plain-path": str(canary),
        "dotdot-segment": f"{d}/../canary",
        "dot-then-dotdot": f"{d}/./../canary",
        "encoded-dotdot": f"{d}/%2e%2e/canary",
        "double-encoded": f"{d}/%252e%252e%252fcanary",
        "fragment": f"{d}/x#/../../canary",
        "semicolon": f"{d}/x;/../../canary",
        "query": f"{d}/x?/../../canary",
        "backslash": f"{d}/..\\canary",
        "sibling-prefix": f"{d}-evil/canary",
        "upper-case-scheme": f"FILE://{canary}",
        "host-in-file-uri": f"file://localhost{canary}",
        "trailing-slash": f"{d}/../canary/",
        "other-s3-bucket": "s3://other-bucket/k",
        "other-bucket-same-scheme": "faulty://other-bucket/k",
        "symlink-inside-destination": f"{d}/planted/canary",
        "nul": f"{d}/x\x00/../../canary",
    }


@pytest.mark.parametrize("case", list(_hostile_uris(Path("/d"), Path("/c"))))
def test_s9_uri_outside_the_destination_is_refused_with_no_read_and_no_delete(
        case: str, tmp_path: Path, make_weights, storage_calls, faulty_fs, core_registry: str) -> None:
    if case == "nul" and core_registry == "postgres":
        pytest.skip("PostgreSQL cannot store NUL in text, so no tampered row can hold this URI")
    dest = tmp_path / "dest"
    canary = tmp_path / "canary"
    canary.write_bytes(b"secret: must never be read or deleted")
    (tmp_path / "dest-evil").mkdir()
    (tmp_path / "dest-evil" / "canary").write_bytes(b"sibling")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "canary").write_bytes(b"secret too")
    faulty = faulty_fs
    faulty.pipe_file("faulty://other-bucket/k", b"another team's object")
    other = faulty.get_plan("other-bucket")
    reads_before = other.counts.reads

    out = uploaded_model(dest, make_weights())
    (dest / "planted").symlink_to(tmp_path / "secrets", target_is_directory=True)
    hostile = _hostile_uris(dest, canary)[case]
    tamper("versions", version_id(out.id), uri=hostile)
    storage_calls.clear()

    model = Model(out.id)
    assert model.get_weights() is None
    with pytest.raises(ValueError) as info:
        model.get_weights(raise_on_error=True)
    assert isinstance(info.value, DestinationError)
    assert model.get_local_copy() is None
    with pytest.raises(DestinationError):
        model.remove_version(1)
    assert [v.uri for v in model.versions] == [hostile]  # the row is kept, refused loudly
    assert Model.remove(out.id) is False
    with pytest.raises(DestinationError):
        Model.remove(out.id, raise_on_errors=True)

    out_dir = tmp_path / "out"
    got = run_cli("models", "get", out.id, "-o", str(out_dir))
    assert got.exit_code == 4 and "refusing" in got.stderr
    assert not out_dir.exists() or files_under(out_dir) == []
    verify = run_cli("verify", "--json")
    assert verify.exit_code == 1
    assert [p["kind"] for p in json.loads(verify.stdout)["problems"]] == ["refused"]
    assert run_cli("gc", "--yes").exit_code == 0
    assert run_cli("models", "rm", out.id).exit_code == 4
    Model(out.id)  # still registered

    assert canary.read_bytes() == b"secret: must never be read or deleted"
    assert (tmp_path / "dest-evil" / "canary").read_bytes() == b"sibling"
    assert (tmp_path / "secrets" / "canary").read_bytes() == b"secret too"
    assert faulty.cat_file("faulty://other-bucket/k") == b"another team's object"
    assert other.counts.reads == reads_before + 1 and other.counts.deletes == 0  # +1: the cat just above
    inside = os.path.realpath(dest)
    for protocol, method, path in storage_calls:
        assert protocol == "file", (protocol, method, path)
        assert os.path.commonpath([inside, os.path.realpath(path)]) == inside, (method, path)
        assert "planted" not in path, (method, path)


def test_s9_destination_recorded_with_a_trailing_slash_or_as_a_plain_path(tmp_path: Path,
                                                                       make_weights) -> None:
    dest = tmp_path / "dest"
    canary = tmp_path / "canary"
    canary.write_bytes(b"secret")
    out = uploaded_model(dest, make_weights())
    good_uri = out.versions[0].uri
    registry = get_registry()
    with registry.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM destinations"))
        conn.execute(sa.text("INSERT INTO destinations (uri, created) VALUES (:a, 0), (:b, 0)"),
                     {"a": f"file://{dest}/", "b": str(dest)})
    # Neither spelling of the root breaks reads of what is inside ...
    assert Path(Model(out.id).get_weights(raise_on_error=True)).read_bytes() == \
        Path(good_uri[len("file://"):]).read_bytes()
    # ... nor lets anything outside through.
    for hostile in (f"file://{dest}/../canary", str(canary), f"{dest}/../canary", f"file://{dest}//../canary"):
        tamper("versions", version_id(out.id), uri=hostile)
        with pytest.raises(DestinationError):
            _storage.check_confined(hostile, registry.destinations())
        with pytest.raises(DestinationError):
            Model(out.id).remove_version(1)
    assert canary.read_bytes() == b"secret"


def test_s9_refused_on_both_registry_backends(tmp_path: Path, make_weights, registry_backend: str) -> None:
    dest = tmp_path / "dest"
    canary = tmp_path / "canary"
    canary.write_bytes(b"secret")
    out = uploaded_model(dest, make_weights())
    for hostile in (f"file://{canary}", f"file://{dest}/../canary", f"file://{dest}/%252e%252e%252fcanary",
                    "s3://other-bucket/k", f"file://{dest}/x#/../../canary"):
        tamper("versions", version_id(out.id), uri=hostile)
        with pytest.raises(DestinationError):
            Model(out.id).get_weights(raise_on_error=True)
        with pytest.raises(DestinationError):
            Model(out.id).remove_version(1)
        assert Model.remove(out.id) is False
    assert canary.read_bytes() == b"secret"


def test_s9_check_confined_accepts_exactly_what_modelyard_writes() -> None:
    roots = ["file:///data/dest", "s3://bucket/team", "faulty://b"]
    for ok in ("file:///data/dest/p/t.1/models/m/1/w.safetensors", "s3://bucket/team/p/x", "faulty://b/k",
               "file:///data/dest", "s3://bucket/team"):
        assert _storage.check_confined(ok, roots) is None
    for bad in ("file:///data/dest-2/x", "s3://bucket/teamx/k", "s3://bucket/k", "s3a://bucket/team/k",
                "S3://bucket/team/k", "file:///data/dest/", "file:///data/dest/a/../../etc",
                "s3://bucket/team/a/../../k", "s3://bucket/team/%2e%2e/k", "s3://bucket/team/k?versionId=1",
                "s3://bucket/team/k#x", "s3://bucket/team/k;x", "s3://bucket/team//k", "s3://bucket/team/./k",
                "s3://bucket/team/a\\..\\k", "/data/dest/x", "data/dest/x", "", "file://", "gs://bucket/team/k"):
        with pytest.raises(DestinationError):
            _storage.check_confined(bad, roots)


# -- S7: tampered rows never change the loader's choice -------------------------------------------------


def test_s7_tampered_format_fields_never_change_how_safetensors_load(tmp_path: Path, make_weights) -> None:
    src = make_weights(value=3.0)
    expected = modelyard.load_weights(src)["w"]
    out = uploaded_model(tmp_path / "dest", src)
    tamper("models", out.id, framework="pytorch")
    tamper("versions", version_id(out.id), file_name="model.pkl",
           meta=json.dumps({"format": "pickle", "loader": "torch.load", "allow_unsafe": True}))
    path = Path(Model(out.id).get_weights(raise_on_error=True))
    assert path.name == "model.pkl"
    assert modelyard.sniff_format(path) == "safetensors"
    np.testing.assert_array_equal(modelyard.load_weights(path)["w"], expected)


@pytest.mark.parametrize("package_format", [None, "zip", "dir", "pickle", "torch"])
def test_s7_pickle_behind_a_tampered_row_is_never_unpickled(tmp_path: Path,
                                                           package_format: str | None) -> None:
    canary = tmp_path / "canary-created-by-unpickling"
    payload = tmp_path / "src" / "model.bin"
    payload.parent.mkdir()
    payload.write_bytes(pickle.dumps(_Canary(canary)))
    out = uploaded_model(tmp_path / "dest", payload)
    tamper("models", out.id, framework="safetensors")
    tamper("versions", version_id(out.id), file_name="model.safetensors", package_format=package_format,
           meta=json.dumps({"format": "safetensors", "safe": True}))
    model = Model(out.id)
    for call in (model.get_weights, model.get_local_copy, model.get_weights_package):
        result = call()
        for path in ([result] if isinstance(result, str) else result or []):
            if Path(path).is_file():
                with pytest.raises(UnsafeFormatError):
                    modelyard.load_weights(path)
    run_cli("models", "get", out.id, "-o", str(tmp_path / "out"))
    for path in files_under(tmp_path / "out") if (tmp_path / "out").exists() else []:
        with pytest.raises(UnsafeFormatError):
            modelyard.load_weights(path)
    assert not canary.exists()
    with pytest.raises(UnsafeFormatError, match="allow_unsafe"):
        modelyard.load_weights(payload)
    assert not canary.exists()


@pytest.mark.parametrize("file_name", ["../../../../escaped", "/etc/passwd", "..", "a/../../b", "..\\..\\x",
                                       "x" * 10_000, "<img src=x onerror=alert(1)>", "line\nbreak"])
def test_s7_tampered_file_name_never_chooses_a_path(tmp_path: Path, make_weights, file_name: str) -> None:
    out = uploaded_model(tmp_path / "dest", make_weights())
    tamper("versions", version_id(out.id), file_name=file_name)
    cache = (Path(os.environ["MODELYARD_HOME"]) / "cache").resolve()
    path = Path(Model(out.id).get_weights(raise_on_error=True)).resolve()
    assert path.is_relative_to(cache) and len(path.name) <= 255
    out_dir = tmp_path / "out"
    got = run_cli("models", "get", out.id, "-o", str(out_dir))
    assert got.exit_code == 0, got.stderr
    (written,) = files_under(out_dir)
    assert written.resolve().parent == out_dir.resolve()
    assert not (tmp_path / "escaped").exists() and not list(tmp_path.glob("b"))


@pytest.mark.parametrize("sha256", ["../escaped", "A" * 64, "0" * 63, "not hex" * 9])
def test_s7_tampered_sha256_is_an_integrity_error_not_a_path(tmp_path: Path, make_weights,
                                                             sha256: str) -> None:
    out = uploaded_model(tmp_path / "dest", make_weights())
    tamper("versions", version_id(out.id), sha256=sha256)
    before = set(tmp_path.rglob("*"))
    with pytest.raises(ValueError) as info:
        Model(out.id).get_weights(raise_on_error=True)
    assert isinstance(info.value.__cause__, IntegrityError)
    # The cache is <home>/cache/<sha[:2]>/<sha>: "../escaped" would have made <tmp_path>/escaped(.lock).
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "escaped.lock").exists()
    cache = Path(os.environ["MODELYARD_HOME"]) / "cache"
    assert {p for p in set(tmp_path.rglob("*")) - before if not p.is_relative_to(cache)} == set()


def test_s7_a_folder_package_without_a_recorded_manifest_hash_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"w" * 100)
    task = Task.init(project_name="p", task_name="t", output_uri=str(tmp_path / "dest"))
    out = OutputModel(task)
    out.update_weights(str(folder), auto_delete_file=False)
    OutputModel.wait_for_uploads()
    tamper("versions", version_id(out.id), sha256=None)
    with pytest.raises(ValueError) as info:
        Model(out.id).get_weights_package(raise_on_error=True)
    assert isinstance(info.value.__cause__, IntegrityError)
    assert run_cli("models", "get", out.id, "-o", str(tmp_path / "out")).exit_code == 4


@pytest.mark.parametrize("target", ["root", "project", "other-model-folder", "other-model-object"])
def test_s7_tampered_row_cannot_widen_a_delete(tmp_path: Path, make_weights, target: str) -> None:
    dest = tmp_path / "dest"
    victim = uploaded_model(dest, make_weights(), name="victim")
    victim.update_weights(str(make_weights()), auto_delete_file=False)
    OutputModel.wait_for_uploads()
    bystander = uploaded_model(dest, make_weights(), name="bystander")
    bystander_object = Path(bystander.versions[0].uri[len("file://"):])
    before = {p: p.read_bytes() for p in files_under(dest)}
    uri = {"root": f"file://{dest}",
           "project": f"file://{dest}/p",
           "other-model-folder": f"file://{bystander_object.parent.parent}",
           "other-model-object": f"file://{bystander_object}"}[target]
    for number in (1, 2):
        tamper("versions", version_id(victim.id, number), uri=uri, package_format="dir")
    assert Model(victim.id).remove_version(1) is True
    assert Model.remove(victim.id) is True
    for path, data in before.items():
        assert path.read_bytes() == data  # nothing was deleted: the rows no longer point at their own objects
    assert Path(Model(bystander.id).get_weights(raise_on_error=True)).read_bytes() == \
        bystander_object.read_bytes()


def test_s7_registered_package_is_never_deleted(tmp_path: Path) -> None:
    import zipfile

    archive = tmp_path / "theirs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("w.bin", b"123")
    model = InputModel.import_model(str(archive), name="theirs", is_package=True)
    assert Model.remove(model.id) is True
    assert archive.is_file()


# -- S7: the journal is a registry field too -----------------------------------------------------------


def _journal_without_upload(model: OutputModel, source: Path,
                            monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Leave a pending version as a process that died before uploading would."""
    with monkeypatch.context() as patch:
        patch.setattr(_uploads.UploadEngine, "submit", lambda self, job, block_timeout=None: Future())
        model.update_weights(str(source))
    registry = get_registry()
    row = registry.model_versions(model.id)[-1]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    registry.update_version(row.id, owner=f"{hostname()}|{dead}|1")
    return registry.get_version(row.id)


JOB_TAMPERING = {
    # field: what the hostile journal says (given the victim's paths); each would do harm if obeyed
    "staging": lambda job, v: {**job, "staging": str(v["folder"])},
    "delete_after": lambda job, v: {**job, "delete_after": [
        {"source": str(v["file"]), "name": "x", "uri": "", "fingerprint": None}]},
    "source": lambda job, v: {**job, "files": [{**job["files"][0], "source": str(v["secret"]),
                                                "fingerprint": None}]},
    "file-uri": lambda job, v: {**job, "files": [{**job["files"][0], "uri": f"file://{v['outside']}"}]},
    "job-uri": lambda job, v: {**job, "uri": f"file://{v['outside']}"},
    "model": lambda job, v: {**job, "model_id": "0" * 32},
    "package-member-uri": lambda job, v: {**job, "package": True, "files": [
        {**job["files"][0], "name": "../../../outside", "uri": f"file://{v['outside']}"}]},
}


@pytest.mark.parametrize("field", list(JOB_TAMPERING))
def test_s7_tampered_journal_is_refused_on_resume(tmp_path: Path, make_weights,
                                                  monkeypatch: pytest.MonkeyPatch, field: str) -> None:
    victim = {"folder": tmp_path / "victim", "file": tmp_path / "victim" / "thesis.txt",
              "secret": tmp_path / "victim" / "id_rsa", "outside": tmp_path / "outside.bin"}
    victim["folder"].mkdir()
    victim["file"].write_text("years of work")
    victim["secret"].write_text("PRIVATE KEY")
    task = Task.init(project_name="p", task_name="t", output_uri=str(tmp_path / "dest"))
    out = OutputModel(task)
    row = _journal_without_upload(out, make_weights(), monkeypatch)
    tamper("versions", row.id, job=json.dumps(JOB_TAMPERING[field](row.job, victim)))

    counts = modelyard.sync()
    assert counts["resumed"] == 1 and counts["failed"] == 1
    failed = get_registry().get_version(row.id)
    assert failed.state == "failed" and "refused" in failed.error
    assert victim["file"].read_text() == "years of work"
    assert victim["secret"].read_text() == "PRIVATE KEY"
    assert not victim["outside"].exists()
    stored = b"".join(p.read_bytes() for p in files_under(tmp_path / "dest"))
    assert b"PRIVATE KEY" not in stored


def test_s7_untampered_journal_still_resumes(tmp_path: Path, make_weights,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    task = Task.init(project_name="p", task_name="t", output_uri=str(tmp_path / "dest"))
    out = OutputModel(task)
    src = make_weights()
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    row = _journal_without_upload(out, src, monkeypatch)
    assert modelyard.sync() == {"resumed": 1, "failed": 0, "pending": 0}
    done = get_registry().get_version(row.id)
    assert done.state == "ready" and done.sha256 == digest


# -- S10: hostile names and tags are data, never paths --------------------------------------------------

HOSTILE_NAMES = ["../../x", "..\\..\\x", "/etc/passwd", "C:\\x", "line\nbreak", "x" * 10_000,
                 "<img src=x onerror=alert(1)>", "%2e%2e%2f", "%", "_", "rtl\u202eevil", ".."]


def test_s10_hostile_names_are_stored_as_data_and_never_a_path(tmp_path: Path, make_weights,
                                                               registry_backend: str) -> None:
    for i, name in enumerate(HOSTILE_NAMES):
        _check_hostile_name(tmp_path / f"case-{i}", make_weights, name)


def _check_hostile_name(tmp_path: Path, make_weights, name: str) -> None:
    dest = tmp_path / "dest"
    task = Task.init(project_name=name, task_name=name, output_uri=str(dest))
    out = OutputModel(task, name=name, tags=[name, "plain"], comment=name, framework=name,
                      config_dict={name: name}, label_enumeration={"plain": 0})
    file_name = name.replace("/", "_").replace("\\", "_")
    file_name = file_name + "x" if file_name in (".", "..") else file_name  # refused as file names
    uri = out.update_weights(str(make_weights()), target_filename=file_name,
                             version_tags=[name], metadata={name: name}, iteration=1, update_comment=False)
    OutputModel.wait_for_uploads()

    # The object key stays inside the destination, one safe component per user string.
    stored = Path(uri[len("file://"):])
    assert stored.is_file() and stored.resolve().is_relative_to(dest.resolve())
    assert all(len(part) <= 255 for part in stored.relative_to(dest).parts)
    assert len(stored.relative_to(dest).parts) == 6
    assert files_under(dest) == [stored]

    # The registry returns the exact strings.
    model = Model(out.id)
    assert (model.name, model.project, model.comment, model.framework) == (name, name, name, name)
    assert model.tags == [name, "plain"] and model.config_dict == {name: name}
    version = model.versions[0]
    assert version.tags == [name] and version.metadata == {name: name}
    assert Task.get_task(task_id=task.id).name == name
    assert [m.id for m in Model.query_models(model_name=name)] == [out.id]
    assert [m.id for m in Model.query_models(tags=[name])] == [out.id]
    assert [m.id for m in Model.query_models(project_name=name)] == [out.id]
    Model(out.id).archive()  # the next name's queries must not see this one

    # Reading back never turns the strings into paths either.
    cache = (Path(os.environ["MODELYARD_HOME"]) / "cache").resolve()
    assert Path(model.get_weights(raise_on_error=True)).resolve().is_relative_to(cache)
    got = run_cli("models", "get", out.id, "-o", str(tmp_path / "out"))
    assert got.exit_code == 0, got.stderr
    assert [p.parent for p in files_under(tmp_path / "out")] == [tmp_path / "out"]
    shown = run_cli("models", "show", out.id, "--json")
    assert json.loads(shown.stdout)["name"] == name


def test_s10_query_wildcards_match_only_themselves(make_weights) -> None:
    task = Task.init(project_name="p", task_name="t")
    plain = OutputModel(task, name="plain", tags=["plain"])
    percent = OutputModel(task, name="%", tags=["%"])
    assert [m.id for m in Model.query_models(model_name="%")] == [percent.id]
    assert [m.id for m in Model.query_models(tags=["%"])] == [percent.id]
    assert [m.id for m in Model.query_models(model_name="_lain")] == []
    assert [m.id for m in Model.query_models(tags=["plain"])] == [plain.id]


NUL_ENTRY_POINTS = {
    "project": lambda t, w: Task.init(project_name="a\x00b", task_name="t"),
    "task name": lambda t, w: Task.init(project_name="p", task_name="a\x00b"),
    "output_uri": lambda t, w: Task.init(project_name="p", task_name="t", output_uri="/tmp/a\x00b"),
    "model name": lambda t, w: OutputModel(t, name="a\x00b"),
    "name setter": lambda t, w: setattr(OutputModel(t), "name", "a\x00b"),
    "tags": lambda t, w: OutputModel(t, tags=["a\x00b"]),
    "tags setter": lambda t, w: setattr(OutputModel(t), "tags", ["a\x00b"]),
    "comment": lambda t, w: OutputModel(t, comment="a\x00b"),
    "comment setter": lambda t, w: setattr(OutputModel(t), "comment", "a\x00b"),
    "framework": lambda t, w: OutputModel(t, framework="a\x00b"),
    "label": lambda t, w: OutputModel(t, label_enumeration={"a\x00b": 0}),
    "config text": lambda t, w: OutputModel(t, config_text="a: b\x00"),
    "target_filename": lambda t, w: OutputModel(t).update_weights(w, target_filename="a\x00b"),
    "version_tags": lambda t, w: OutputModel(t).update_weights(w, version_tags=["a\x00b"]),
    "upload_uri": lambda t, w: OutputModel(t).update_weights(w, upload_uri="/tmp/a\x00b"),
    "register_uri": lambda t, w: OutputModel(t).update_weights(register_uri="s3://b/a\x00b"),
    "set_version_tags": lambda t, w: Model(OutputModel(t).id).set_version_tags(1, add=["a\x00b"]),
    "import name": lambda t, w: InputModel.import_model(w, name="a\x00b"),
    "import project": lambda t, w: InputModel.import_model(w, project="a\x00b"),
    "import comment": lambda t, w: InputModel.import_model(w, comment="a\x00b"),
    "import url": lambda t, w: InputModel.import_model(w + "\x00"),
}


def test_s10_nul_is_refused_with_a_typed_error(make_weights, registry_backend: str) -> None:
    task = Task.init(project_name="p", task_name="t")
    source = str(make_weights())
    for entry, call in NUL_ENTRY_POINTS.items():
        with pytest.raises(InvalidArgumentError, match="NUL|plain file name|control character"):
            call(task, source)
            pytest.fail(f"{entry}: NUL accepted")
    # Nothing half-written: no versions anywhere, and the file is still there.
    assert [v for m in Model.query_models(include_archived=True) for v in m.versions] == []
    assert Path(source).is_file()
