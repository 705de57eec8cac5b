"""Task semantics: init defaults, current task, lookup, models mapping, close."""

from __future__ import annotations

import pytest

import modelyard
from modelyard import InputModel, OutputModel, Task


def test_init_defaults_project_and_script_name() -> None:
    task = Task.init()
    assert task.project == "default"
    assert task.name  # named after the running script
    assert len(task.id) == 32 and int(task.id, 16) >= 0
    assert task.status == "in_progress"
    assert Task.current_task() == task


def test_get_task_by_id_and_by_name() -> None:
    first = Task.init(project_name="p", task_name="a")
    second = Task.init(project_name="p", task_name="a")
    assert Task.get_task(task_id=first.id) == first
    assert Task.get_task(project_name="p", task_name="a") == second  # newest
    with pytest.raises(ValueError):
        Task.get_task(project_name="p", task_name="missing")
    with pytest.raises(ValueError):
        Task.get_task()


def test_output_uri_is_settable_and_normalised(tmp_path) -> None:
    task = Task.init(project_name="p", task_name="a", output_uri=str(tmp_path / "dest/"))
    assert task.output_uri == f"file://{tmp_path / 'dest'}"
    task.output_uri = "memory://bucket/x"
    assert task.output_uri == "memory://bucket/x"


def test_bad_names_are_refused() -> None:
    for bad in ("", "   ", "a\x00b", 3):
        with pytest.raises(ValueError):
            Task.init(project_name=bad)  # type: ignore[arg-type]


def test_models_mapping_and_connect(make_weights) -> None:
    task = Task.init(project_name="p", task_name="a")
    out = OutputModel(task, name="out")
    assert [m.id for m in task.models["output"]] == [out.id]
    other_task = Task.init(project_name="p", task_name="b")
    source = InputModel(out.id)
    source.connect(other_task, name="backbone")
    assert [m.id for m in other_task.models["input"]] == [out.id]
    assert other_task.models["output"] == []
    # connect an OutputModel to another task: it becomes one of its outputs
    out.connect(other_task)
    assert out.id in [m.id for m in other_task.models["output"]]


def test_close_waits_for_uploads_and_completes(make_weights) -> None:
    task = Task.init(project_name="p", task_name="a")
    out = OutputModel(task)
    out.update_weights(str(make_weights()))
    task.close()
    assert out.versions[-1].state == "ready"
    assert task.status == "completed"
    assert Task.current_task() is None


def test_close_marks_failed_when_an_upload_failed(make_weights, tmp_path) -> None:
    task = Task.init(project_name="p", task_name="a")
    out = OutputModel(task)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")  # the destination is a file: every upload into it fails permanently
    out.update_weights(str(make_weights()), upload_uri=str(blocker))
    with pytest.raises(modelyard.UploadError):
        task.close()
    assert task.status == "failed"


def test_mark_completed_and_mark_failed_set_the_status_without_waiting_for_uploads(monkeypatch) -> None:
    from modelyard import _uploads

    def never(*args: object, **kwargs: object) -> bool:
        raise AssertionError("mark_completed/mark_failed must not wait for uploads")

    monkeypatch.setattr(_uploads.UploadEngine, "wait", never)
    done = Task.init(project_name="p", task_name="done")
    done.mark_completed()
    assert Task.get_task(task_id=done.id).status == "completed"
    assert Task.current_task() is None  # no longer the current task, as after close()
    failed = Task.init(project_name="p", task_name="failed")
    failed.mark_failed(status_reason="loss was nan")
    assert Task.get_task(task_id=failed.id).status == "failed"
    assert failed.status_reason == "loss was nan"
    assert Task.current_task() is None
    plain = Task.init(project_name="p", task_name="plain")
    plain.mark_failed()  # ClearML's default: no reason
    assert plain.status == "failed" and plain.status_reason is None


def test_mark_failed_refuses_a_reason_that_is_not_text() -> None:
    task = Task.init(project_name="p", task_name="a")
    with pytest.raises(ValueError, match="status_reason"):
        task.mark_failed(status_reason=3)  # type: ignore[arg-type]
    assert task.status == "in_progress"


def test_mark_completed_keeps_another_current_task() -> None:
    first = Task.init(project_name="p", task_name="first")
    second = Task.init(project_name="p", task_name="second")
    first.mark_completed()
    assert Task.current_task() == second
