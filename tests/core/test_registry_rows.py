"""The registry's typed boundary: rows come back as frozen dataclasses, decoded, on both backends."""

from __future__ import annotations

import dataclasses

import pytest

from modelyard._errors import InvalidArgumentError, RegistryError
from modelyard._model import Model
from modelyard._registry import get_registry
from modelyard._rows import ModelRow, StoredObject, TaskLinkRow, TaskRow, VersionRow
from modelyard._versions import ModelVersion, iso_time


def test_rows_are_typed_decoded_and_frozen(registry_backend: str) -> None:
    registry = get_registry()
    registry.insert_task(id="t" * 32, project="p", name="run", status="in_progress", tags=["a"])
    registry.insert_model(id="m" * 32, task_id="t" * 32, project="p", name="net", labels={"cat": 0},
                          tags=["x", "y"])
    registry.link_task_model("t" * 32, "m" * 32, "output", None)
    version = registry.add_version("m" * 32, file_name="w.safetensors", state="ready", uri="file:///d/w",
                                   size=3, tags=["best"], meta={"loss": 0.5}, pinned=True)
    task, model = registry.get_task("t" * 32), registry.get_model("m" * 32)
    assert isinstance(task, TaskRow) and task.tags == ["a"] and task.output_uri is None
    assert isinstance(model, ModelRow)
    assert (model.labels, model.tags, model.published, model.version_count) == ({"cat": 0}, ["x", "y"], False, 1)
    assert isinstance(version, VersionRow) and version == registry.get_version(version.id)
    assert (version.version, version.pinned, version.meta, version.tags) == (1, True, {"loss": 0.5}, ["best"])
    assert registry.model_versions("m" * 32) == [version]
    assert registry.task_model_links("t" * 32) == [TaskLinkRow("t" * 32, "m" * 32, "output", None,
                                                               registry.task_model_links("t" * 32)[0].created)]
    assert registry.uri_users("file:///d/w") == [StoredObject(version.id, "m" * 32, 1, "file:///d/w", 3, None,
                                                              "ready", None)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.name = "other"  # type: ignore[misc]
    assert model.name == "net" and task.status == "in_progress"
    with pytest.raises(TypeError):  # not mappings: a leftover ``row["name"]`` fails loudly
        model["name"]  # type: ignore[index]


def test_updates_take_only_the_fields_given(registry_backend: str) -> None:
    registry = get_registry()
    registry.insert_task(id="t" * 32, project="p", name="run", status="in_progress", output_uri="file:///o")
    registry.update_task("t" * 32, status="completed")
    assert (registry.get_task("t" * 32).status, registry.get_task("t" * 32).output_uri) == ("completed", "file:///o")
    registry.update_task("t" * 32, output_uri=None)  # None is a value (NULL), not "unchanged"
    assert registry.get_task("t" * 32).output_uri is None
    registry.insert_model(id="m" * 32, project="p", name="net", tags=["x"])
    registry.update_model("m" * 32, tags=["y"], archived=True)
    model = registry.get_model("m" * 32)
    assert (model.tags, model.archived, model.name) == (["y"], True, "net")
    with pytest.raises(TypeError):
        registry.update_model("m" * 32, colour="red")  # type: ignore[call-arg]
    with pytest.raises(InvalidArgumentError, match="NUL"):
        registry.update_model("m" * 32, name="a\x00b")


def test_a_tampered_json_column_is_a_registry_error(registry_backend: str) -> None:
    registry = get_registry()
    registry.insert_model(id="m" * 32, project="p", name="net")
    with registry.write() as conn:
        conn.exec_driver_sql("UPDATE models SET tags = 'not json'")
    with pytest.raises(RegistryError, match="'tags' holds invalid JSON"):
        registry.get_model("m" * 32)


def test_one_mapping_from_a_version_row_to_the_public_object(registry_backend: str) -> None:
    registry = get_registry()
    registry.insert_model(id="m" * 32, project="p", name="net")
    row = registry.add_version("m" * 32, file_name="w.safetensors", state="uploading", uri="file:///d/w",
                               iteration=0, tags=["best"], meta={"loss": 0.5})
    version = Model("m" * 32).get_version(1)
    assert version == ModelVersion.from_row(row) and version.model_id == "m" * 32
    assert version.to_dict() == {  # what `modelyard models show --json` prints per version
        "version": 1, "iteration": 0, "state": "uploading", "size": None, "sha256": None, "uri": "file:///d/w",
        "file_name": "w.safetensors", "package_format": None, "tags": ["best"], "metadata": {"loss": 0.5},
        "pinned": False, "error": None, "created": iso_time(row.created)}
    assert version.to_dict()["created"].endswith("Z")


def test_model_publish_refuses_while_an_upload_is_in_progress(registry_backend: str) -> None:
    registry = get_registry()
    registry.insert_model(id="m" * 32, project="p", name="net")
    row = registry.add_version("m" * 32, file_name="w", state="pending", uri="file:///d/w")
    with pytest.raises(InvalidArgumentError, match="1 upload\\(s\\) in progress \\(version 1 is pending\\)"):
        Model("m" * 32).publish()
    assert registry.get_model("m" * 32).published is False
    registry.update_version(row.id, state="failed", error="gone")
    Model("m" * 32).publish()
    Model("m" * 32).publish()  # a no-op once published
    assert registry.get_model("m" * 32).published is True
