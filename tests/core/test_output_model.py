"""OutputModel semantics (the members of ClearML's reference, with modelyard's rules where it is silent)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

import modelyard
from modelyard import InputModel, Model, OutputModel, Task


def sha(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- construction ---------------------------------------------------------------------------------------


def test_id_and_row_exist_at_construction(task) -> None:
    out = OutputModel(task)
    assert len(out.id) == 32 and int(out.id, 16) >= 0
    assert Model(out.id).name == task.name  # stored at once, name defaults to the task's
    assert out.task == task.id
    assert out.url is None
    assert out.published is False
    assert out.versions == []


def test_task_none_uses_current_task_or_raises() -> None:
    with pytest.raises(ValueError, match="Task.init"):
        OutputModel()
    task = Task.init(project_name="p", task_name="t")
    assert OutputModel().task == task.id


def test_i3_both_configs_refused(task) -> None:
    with pytest.raises(ValueError, match="not both"):
        OutputModel(task, config_text="a: 1", config_dict={"a": 1})


def test_config_dict_is_canonical_json(task) -> None:
    out = OutputModel(task, config_dict={"b": 1, "a": [1, 2.5, "x"], "nested": {"z": None}})
    assert json.loads(out.config_text) == {"b": 1, "a": [1, 2.5, "x"], "nested": {"z": None}}
    assert list(json.loads(out.config_text)) == ["b", "a", "nested"]  # insertion order kept
    assert out.config_dict == {"b": 1, "a": [1, 2.5, "x"], "nested": {"z": None}}


def test_config_text_yaml_and_verbatim(task) -> None:
    out = OutputModel(task, config_text="lr: 0.1\nlayers: [1, 2]\n")
    assert out.config_dict == {"lr": 0.1, "layers": [1, 2]}
    prototxt = OutputModel(task, config_text="layer { name: 'x' } }")
    assert prototxt.config_text == "layer { name: 'x' } }"
    with pytest.raises(ValueError):
        _ = prototxt.config_dict


@pytest.mark.parametrize("bad", [
    {"x": float("nan")}, {"x": float("inf")}, {"x": b"bytes"}, {"x": "\ud800"}, {1: "a", "1": "b"},
])
def test_i1_unserialisable_config_fails_in_the_call(task, bad) -> None:
    with pytest.raises(modelyard.ConfigError):
        OutputModel(task, config_dict=bad)


def test_i1_circular_and_deep_configs_fail_in_the_call(task) -> None:
    circular: dict = {}
    circular["self"] = circular
    with pytest.raises(modelyard.ConfigError):
        OutputModel(task, config_dict=circular)
    deep: dict = {}
    node = deep
    for _ in range(10_000):
        node["n"] = {}
        node = node["n"]
    with pytest.raises(modelyard.ConfigError):
        OutputModel(task, config_dict=deep)


@pytest.mark.parametrize("labels", [
    {"a": True}, {"a": 1.0}, {"": 0}, {3: 0}, {"a": 0, "b": 0}, {"a": "1"}, ["a", "b"],
])
def test_i2_bad_labels_refused_in_constructor(task, labels) -> None:
    with pytest.raises(modelyard.LabelError):
        OutputModel(task, label_enumeration=labels)


def test_i2_numpy_integer_labels_accepted(task) -> None:
    out = OutputModel(task, label_enumeration={"bg": np.int64(0), "person": np.uint8(1)})
    assert out.labels == {"bg": 0, "person": 1}
    assert all(type(v) is int for v in out.labels.values())


def test_config_and_labels_inherited_from_task_input_model(task) -> None:
    source = OutputModel(task, config_dict={"k": 1}, label_enumeration={"a": 0})
    consumer = Task.init(project_name="p", task_name="c")
    InputModel(source.id).connect(consumer)
    inherited = OutputModel(consumer)
    assert inherited.config_dict == {"k": 1}
    assert inherited.labels == {"a": 0}
    own = OutputModel(consumer, config_dict={"k": 2}, label_enumeration={"b": 0})
    assert own.config_dict == {"k": 2} and own.labels == {"b": 0}


def test_base_model_id_continues_an_existing_model(task, make_weights) -> None:
    first = OutputModel(task, name="m")
    first.update_weights(str(make_weights()))
    again = OutputModel(task, base_model_id=first.id, comment="continued")
    assert again.id == first.id
    again.update_weights(str(make_weights()))
    OutputModel.wait_for_uploads()
    assert [v.version for v in Model(first.id).versions] == [1, 2]
    first.publish()
    with pytest.raises(modelyard.PublishedModelError):
        OutputModel(task, base_model_id=first.id)


def test_settable_properties_and_framework(task) -> None:
    out = OutputModel(task, name="n", tags=["a", "b", "a"], comment="c", framework="PyTorch")
    assert out.tags == ["a", "b"]
    assert out.framework == "PyTorch"
    out.name, out.comment, out.tags = "n2", "c2", ["x"]
    assert (out.name, out.comment, out.tags) == ("n2", "c2", ["x"])
    with pytest.raises(ValueError):
        out.tags = "single-string"  # type: ignore[assignment]


# -- weights --------------------------------------------------------------------------------------------


def test_update_weights_returns_final_uri_and_uploads(task, make_weights) -> None:
    src = make_weights()
    digest = sha(src)
    uri = OutputModel(task).update_weights(str(src), iteration=0)
    assert uri.startswith("file://") and uri.endswith("/1/model.safetensors")
    OutputModel.wait_for_uploads()
    model = Model.query_models()[0]
    assert model.url == uri
    (version,) = model.versions
    assert (version.iteration, version.state, version.sha256) == (0, "ready", digest)
    assert version.size == len(Path(uri[len("file://"):]).read_bytes())
    assert not src.exists()  # auto_delete_file=True deletes only after the upload is durable


def test_object_key_layout_and_no_overwrites(task, make_weights) -> None:
    a, b = OutputModel(task, name="a"), OutputModel(task, name="b")
    uris = [a.update_weights(str(make_weights())), a.update_weights(str(make_weights())),
            b.update_weights(str(make_weights()))]
    OutputModel.wait_for_uploads()
    assert len(set(uris)) == 3
    dest = modelyard._storage.normalize_destination(str(Path(os.environ["MODELYARD_HOME"]) / "storage"))
    assert uris[0] == f"{dest}/proj/run.{task.id}/models/{a.id}/1/model.safetensors"
    assert uris[1] == f"{dest}/proj/run.{task.id}/models/{a.id}/2/model.safetensors"
    assert all(Path(u[len("file://"):]).is_file() for u in uris)


def test_s10_user_strings_never_escape_the_destination(tmp_path, make_weights) -> None:
    dest = tmp_path / "dest"
    task = Task.init(project_name="../../etc", task_name="..\\x/../y", output_uri=str(dest))
    out = OutputModel(task, name="../../n")
    uri = out.update_weights(str(make_weights()), target_filename="..evil")
    OutputModel.wait_for_uploads()
    path = Path(uri[len("file://"):]).resolve()
    assert path.is_relative_to(dest.resolve())
    with pytest.raises(ValueError):
        out.update_weights(str(make_weights()), target_filename="../escape")


def test_auto_delete_false_keeps_source(task, make_weights) -> None:
    src = make_weights()
    OutputModel(task).update_weights(str(src), auto_delete_file=False)
    OutputModel.wait_for_uploads()
    assert src.exists()


def test_i3_argument_combinations_refused(task, make_weights) -> None:
    out = OutputModel(task)
    with pytest.raises(ValueError, match="exactly one"):
        out.update_weights()
    with pytest.raises(ValueError, match="exactly one"):
        out.update_weights(str(make_weights()), register_uri="s3://b/k")
    with pytest.raises(ValueError, match="does not exist"):
        out.update_weights("missing.bin")
    with pytest.raises(ValueError):
        out.update_weights(str(make_weights()), iteration=True)
    with pytest.raises(ValueError):
        out.update_weights(str(make_weights()), iteration=1.5)
    assert out.versions == []  # nothing half-written


def test_numpy_iteration_accepted(task, make_weights) -> None:
    out = OutputModel(task)
    out.update_weights(str(make_weights()), iteration=np.int64(7))
    OutputModel.wait_for_uploads()
    assert out.versions[0].iteration == 7


def test_versions_history_and_url_is_newest_ready(task, make_weights) -> None:
    out = OutputModel(task)
    uris = [out.update_weights(str(make_weights(value=i)), iteration=i * 10) for i in range(3)]
    OutputModel.wait_for_uploads()
    assert [v.version for v in out.versions] == [1, 2, 3]
    assert [v.iteration for v in out.versions] == [0, 10, 20]
    assert out.url == uris[-1]
    loaded = modelyard.load_weights(out.get_weights(raise_on_error=True))
    assert float(loaded["w"][0, 0]) == 2.0
    older = modelyard.load_weights(out.get_weights(version=1, raise_on_error=True))
    assert float(older["w"][0, 0]) == 0.0


def test_update_comment_records_basename_once(task, make_weights) -> None:
    out = OutputModel(task, comment="my model")
    for _ in range(3):
        out.update_weights(str(make_weights("ckpt.safetensors")))
    assert out.comment == "my model\nsource file: ckpt.safetensors"
    assert "/" not in out.comment.splitlines()[-1]
    quiet = OutputModel(task, comment="q")
    quiet.update_weights(str(make_weights()), update_comment=False)
    assert quiet.comment == "q"


def test_register_uri_records_without_upload(task) -> None:
    out = OutputModel(task)
    uri = out.update_weights(register_uri="s3://bucket/models/w.safetensors", iteration=3)
    assert uri == "s3://bucket/models/w.safetensors"
    assert out.url == uri
    assert out.versions[0].state == "ready"


def test_directory_is_a_package(task, tmp_path) -> None:
    folder = tmp_path / "ckpt"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "sub" / "w.bin").write_bytes(b"\x00" * 1000)
    out = OutputModel(task)
    uri = out.update_weights(str(folder), auto_delete_file=False, iteration=1)
    files = out.get_weights_package()
    names = sorted(p.relative_to(p.parents[1] if p.parent.name == "sub" else p.parent).as_posix()
                   for p in files)
    assert names == ["config.json", "sub/w.bin"]
    assert "package" in out.system_tags
    assert out.url == uri
    folder_path = Path(out.get_weights_package(return_path=True))
    assert (folder_path / "sub" / "w.bin").read_bytes() == b"\x00" * 1000
    assert Path(out.get_weights()).is_dir()
    assert folder.exists()


def test_update_weights_package_from_files(task, tmp_path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("A")
    b.write_text("B")
    out = OutputModel(task)
    out.update_weights_package(weights_filenames=[str(a), str(b)], iteration=2)
    path = Path(out.get_weights_package(return_path=True))
    assert sorted(p.name for p in path.iterdir()) == ["a.txt", "b.txt"]
    assert not a.exists() and not b.exists()
    with pytest.raises(ValueError):
        out.update_weights_package(weights_filenames=[str(a)], weights_path=str(tmp_path))
    with pytest.raises(ValueError):
        out.update_weights_package()


def test_update_weights_package_exclude_leaves_files_out_and_in_place(task, tmp_path) -> None:
    folder = tmp_path / "checkpoint-3"
    (folder / "global_step3").mkdir(parents=True)
    for name in ("model.safetensors", "config.json", "optimizer.pt", "rng_state_0.pth", "global_step3/s.pt"):
        (folder / name).write_bytes(name.encode())
    out = OutputModel(task)
    out.update_weights_package(weights_path=str(folder), auto_delete_file=True,
                               exclude=["optimizer.pt", "rng_state*.pth", "global_step*"])
    path = Path(out.get_weights_package(return_path=True, raise_on_error=True))
    assert sorted(p.name for p in path.rglob("*")) == ["config.json", "model.safetensors"]
    assert (folder / "optimizer.pt").exists() and (folder / "global_step3" / "s.pt").exists()
    assert not (folder / "config.json").exists()
    with pytest.raises(ValueError, match="empty"):
        out.update_weights_package(weights_path=str(folder), exclude=["*"])
    with pytest.raises(ValueError):
        out.update_weights_package(weights_path=str(folder), exclude="optimizer.pt")


def test_zip_package_is_extracted_safely(task, tmp_path) -> None:
    import zipfile

    archive = tmp_path / "pkg.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("model/config.json", "{}")
        zf.writestr("model/w.bin", b"123")
    out = OutputModel(task)
    out.update_weights(str(archive), is_package=True)
    folder = Path(out.get_weights_package(return_path=True))
    assert (folder / "model" / "w.bin").read_bytes() == b"123"
    local = Path(Model(out.id).get_local_copy())
    assert (local / "model" / "config.json").exists()


def test_s1_unsafe_zip_package_refused_in_foreground(task, tmp_path) -> None:
    import zipfile

    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../evil.txt", "x")
    out = OutputModel(task)
    with pytest.raises(modelyard.ArchiveError):
        out.update_weights(str(archive), is_package=True)
    assert out.versions == []
    assert archive.exists()


def test_i3_publish_makes_model_immutable(task, make_weights) -> None:
    out = OutputModel(task)
    out.update_weights(str(make_weights()))
    out.publish()
    assert out.published and out.versions[0].state == "ready"  # publish waited for the upload
    out.publish()  # a no-op
    for call in (lambda: out.update_weights(str(make_weights())),
                 lambda: out.update_weights_package(weights_filenames=[str(make_weights())]),
                 lambda: out.update_design(config_text="x"),
                 lambda: out.update_labels({"a": 0}),
                 lambda: out.set_upload_destination("memory://x")):
        with pytest.raises(ValueError):
            call()


def test_update_design_and_labels(task) -> None:
    out = OutputModel(task)
    assert out.update_design(config_dict={"a": 1}) is True
    assert out.config_dict == {"a": 1}
    out.update_design(config_text="b: 2")
    assert out.config_dict == {"b": 2}
    out.update_labels({"x": 0, "y": 1})
    assert out.labels == {"x": 0, "y": 1}
    with pytest.raises(modelyard.LabelError):
        out.update_labels({"x": 0, "y": 0})
    assert out.labels == {"x": 0, "y": 1}


# -- destinations ---------------------------------------------------------------------------------------


def test_set_upload_destination(task, tmp_path, make_weights) -> None:
    out = OutputModel(task)
    assert out.set_upload_destination(str(tmp_path / "dest")) is True
    assert out.set_upload_destination("nosuchscheme://bucket") is False
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert out.set_upload_destination(str(blocker / "sub")) is False
    uri = out.update_weights(str(make_weights()))
    assert uri.startswith(f"file://{tmp_path / 'dest'}/")


def test_destination_precedence(tmp_path, make_weights, monkeypatch) -> None:
    def dest_of(uri: str) -> str:
        return uri.split("/proj/")[0]

    monkeypatch.setenv("MODELYARD_DEFAULT_OUTPUT_URI", str(tmp_path / "env"))
    task = Task.init(project_name="proj", task_name="t")
    out = OutputModel(task)
    assert dest_of(out.update_weights(str(make_weights()))) == f"file://{tmp_path / 'env'}"
    OutputModel.set_default_upload_uri(str(tmp_path / "default"))
    assert dest_of(out.update_weights(str(make_weights()))) == f"file://{tmp_path / 'default'}"
    task.output_uri = str(tmp_path / "task")
    assert dest_of(out.update_weights(str(make_weights()))) == f"file://{tmp_path / 'task'}"
    out.set_upload_destination(str(tmp_path / "model"))
    assert dest_of(out.update_weights(str(make_weights()))) == f"file://{tmp_path / 'model'}"
    assert dest_of(out.update_weights(str(make_weights()), upload_uri=str(tmp_path / "call"))) == \
        f"file://{tmp_path / 'call'}"
    OutputModel.wait_for_uploads()
    assert all(v.state == "ready" for v in out.versions)


def test_default_destination_is_home_storage(task, make_weights) -> None:
    uri = OutputModel(task).update_weights(str(make_weights()))
    assert uri.startswith(f"file://{os.environ['MODELYARD_HOME']}/storage/")


def test_memory_destination(task, make_weights) -> None:
    out = OutputModel(task)
    src = make_weights()
    digest = sha(src)
    out.update_weights(str(src), upload_uri="memory://bucket/models")
    path = out.get_weights(raise_on_error=True)
    assert sha(path) == digest


def test_missing_fsspec_implementation_is_a_clear_error(task, make_weights) -> None:
    out = OutputModel(task)
    with pytest.raises(modelyard.ModelyardError) as info:
        out.update_weights(str(make_weights()), upload_uri="gs://bucket/x")
    assert "pip install" in str(info.value) or "gcsfs" in str(info.value)
    assert out.versions == []


# -- reading back --------------------------------------------------------------------------------------


def test_get_weights_none_or_raise(task) -> None:
    out = OutputModel(task)
    assert out.get_weights() is None
    with pytest.raises(ValueError):
        out.get_weights(raise_on_error=True)
    assert out.get_weights_package() is None


def test_r11_get_weights_verifies_hash(task, make_weights) -> None:
    out = OutputModel(task)
    uri = out.update_weights(str(make_weights()))
    OutputModel.wait_for_uploads()
    Path(uri[len("file://"):]).write_bytes(b"tampered")
    assert out.get_weights() is None
    with pytest.raises(ValueError, match="recorded"):
        out.get_weights(raise_on_error=True)
    cache = Path(os.environ["MODELYARD_HOME"]) / "cache"
    assert not [p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".lock")]


def test_r2_wait_for_uploads_raises_naming_model_file_and_cause(task, make_weights, tmp_path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    out = OutputModel(task)
    src = make_weights()
    out.update_weights(str(src), upload_uri=str(blocker))
    with pytest.raises(modelyard.UploadError) as info:
        OutputModel.wait_for_uploads()
    message = str(info.value)
    assert out.id in message and "model.safetensors" in message
    assert info.value.model_id == out.id and info.value.cause
    assert src.exists()  # never deleted after a failure
    (version,) = out.versions
    assert version.state == "failed" and version.error
    OutputModel.wait_for_uploads()  # reported once


def test_wait_for_uploads_timeout_and_max_num(task, make_weights) -> None:
    assert OutputModel.wait_for_uploads(timeout=0.1) is True
    out = OutputModel(task)
    for _ in range(3):
        out.update_weights(str(make_weights()))
    assert OutputModel.wait_for_uploads(max_num_uploads=1) is True
    assert OutputModel.wait_for_uploads() is True
    assert [v.state for v in out.versions] == ["ready"] * 3


# -- queries, archive, remove ---------------------------------------------------------------------------


def test_query_models_filters_and_order(make_weights) -> None:
    t1 = Task.init(project_name="a", task_name="t")
    m1 = OutputModel(t1, name="x", tags=["blue", "big"])
    m2 = OutputModel(t1, name="y", tags=["blue"])
    t2 = Task.init(project_name="b", task_name="t")
    m3 = OutputModel(t2, name="x", tags=["red"])
    ids = lambda models: [m.id for m in models]  # noqa: E731
    assert ids(Model.query_models()) == [m3.id, m2.id, m1.id]
    assert ids(Model.query_models(project_name="a")) == [m2.id, m1.id]
    assert ids(Model.query_models(model_name="x")) == [m3.id, m1.id]
    assert ids(Model.query_models(tags=["blue", "big"])) == [m1.id]
    assert ids(Model.query_models(tags=["blue", "-big"])) == [m2.id]
    assert ids(Model.query_models(max_results=1)) == [m3.id]
    m2.publish()
    assert ids(Model.query_models(only_published=True)) == [m2.id]
    Model(m1.id).archive()
    assert m1.id not in ids(Model.query_models())
    assert m1.id in ids(Model.query_models(include_archived=True))
    assert "archived" in Model(m1.id).system_tags
    Model(m1.id).unarchive()
    assert m1.id in ids(Model.query_models())


def test_input_model_lookup(task) -> None:
    old = OutputModel(task, name="n", tags=["t"])
    new = OutputModel(task, name="n", tags=["t"])
    assert InputModel(name="n").id == new.id
    assert InputModel(model_id=old.id).id == old.id
    old.publish()
    assert InputModel(name="n", only_published=True).id == old.id
    with pytest.raises(ValueError):
        InputModel(name="missing")
    with pytest.raises(ValueError):
        Model("0" * 32)


def test_import_model(tmp_path) -> None:
    weights = tmp_path / "w.safetensors"
    modelyard.save_safetensors({"a": np.zeros(3, np.float32)}, weights)
    imported = InputModel.import_model(str(weights), config_dict={"a": 1}, label_enumeration={"x": 0},
                                       name="imp", project="p", tags=["t"], comment="c",
                                       create_as_published=True, framework="numpy")
    assert (imported.name, imported.project, imported.tags, imported.comment) == ("imp", "p", ["t"], "c")
    assert imported.published and imported.labels == {"x": 0} and imported.framework == "numpy"
    assert imported.url == f"file://{weights}"
    assert modelyard.load_weights(imported.get_weights(raise_on_error=True))["a"].shape == (3,)


def test_remove_model_deletes_objects(task, make_weights) -> None:
    out = OutputModel(task)
    uri = out.update_weights(str(make_weights()))
    OutputModel.wait_for_uploads()
    path = Path(uri[len("file://"):])
    assert path.exists()
    out.publish()
    assert Model.remove(out.id) is False
    with pytest.raises(modelyard.PublishedModelError):
        Model.remove(out.id, raise_on_errors=True)
    assert Model.remove(out.id, force=True) is True
    assert not path.exists()
    with pytest.raises(ValueError):
        Model(out.id)


def test_remove_model_keep_files(task, make_weights) -> None:
    out = OutputModel(task)
    uri = out.update_weights(str(make_weights()))
    OutputModel.wait_for_uploads()
    assert Model.remove(Model(out.id), delete_weights_file=False)
    assert Path(uri[len("file://"):]).exists()


def test_version_tags_pin_and_remove_version(task, make_weights) -> None:
    out = OutputModel(task)
    for i in range(3):
        out.update_weights(str(make_weights()), iteration=i, metadata={"score": i / 10}, version_tags=["ckpt"])
    OutputModel.wait_for_uploads()
    model = Model(out.id)
    model.set_version_tags(2, add=["best"], exclusive=True)
    model.set_version_tags(3, add=["best"], exclusive=True)
    assert [v.tags for v in model.versions] == [["ckpt"], ["ckpt"], ["ckpt", "best"]]
    assert model.versions[1].metadata == {"score": 0.1}
    model.pin_version(1)
    assert model.remove_version(1) is False
    first_uri = model.versions[1].uri
    assert model.remove_version(2) is True
    assert [v.version for v in model.versions] == [1, 3]
    assert not Path(first_uri[len("file://"):]).exists()


def test_package_system_tag_for_every_kind_of_package(task, tmp_path) -> None:
    import zipfile

    archive = tmp_path / "p.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("w.bin", b"1")
    zipped = OutputModel(task)
    zipped.update_weights(str(archive), is_package=True, auto_delete_file=False)
    registered = OutputModel(task)
    registered.update_weights(register_uri=f"file://{archive}", is_package=True)
    plain = OutputModel(task)
    plain.update_weights(register_uri=f"file://{archive}")
    OutputModel.wait_for_uploads()
    assert zipped.system_tags == ["package"] and registered.system_tags == ["package"]
    assert plain.system_tags == []


def test_add_version_returns_the_recorded_version(task, make_weights, tmp_path) -> None:
    out = OutputModel(task)
    version = out.add_version(make_weights("a.safetensors"), iteration=3, metadata={"score": 0.5})
    assert (version.model_id, version.version, version.iteration) == (out.id, 1, 3)
    assert version.state == "pending" and version.metadata == {"score": 0.5}
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"x" * 10)
    package = out.add_package_version(weights_path=str(folder), auto_delete_file=False)
    assert (package.model_id, package.version, package.package_format) == (out.id, 2, "dir")
    assert OutputModel.wait_for_uploads()
    assert [v.uri for v in Model(out.id).versions] == [version.uri, package.uri]
    registered = out.add_version(register_uri=version.uri)
    assert (registered.version, registered.state) == (3, "ready")
