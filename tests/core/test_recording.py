"""TrainingRecorder's background mode: one ordered, bounded worker; errors raised in the caller; drained."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from modelyard import LAST_TAG, Model, Task, TrainingRecorder


def _recorder(**kwargs: object) -> TrainingRecorder:
    recorder = TrainingRecorder(framework="test", project="p", task_name="run", background=True, **kwargs)
    recorder.add_model(name="Net")
    return recorder


def test_submitted_work_runs_in_order_on_one_non_daemon_thread(make_weights) -> None:
    recorder = _recorder()
    caller = threading.current_thread()
    threads: list[threading.Thread] = []
    order: list[int] = []

    def job(i: int) -> int:
        threads.append(threading.current_thread())
        time.sleep(0.01)
        order.append(i)
        return i

    futures = [recorder.submit(job, i) for i in range(6)]
    versions = [recorder.submit(recorder.record, make_weights(value=i), iteration=i) for i in range(3)]
    recorder.submit(recorder.tag, versions[-1], LAST_TAG)
    recorder.finish()
    assert order == list(range(6)) and [f.result() for f in futures] == list(range(6))
    assert len(set(threads)) == 1 and threads[0] is not caller and not threads[0].daemon
    model = Model(recorder.model().id)
    assert [v.iteration for v in model.versions] == [0, 1, 2]
    assert all(v.state == "ready" for v in model.versions)  # finish ran the work before waiting for uploads
    assert model.get_version(3).tags == [LAST_TAG]
    assert recorder.task is not None and recorder.task.status == "completed"


def test_the_caller_does_not_wait_for_the_work() -> None:
    recorder = _recorder()
    release = threading.Event()
    started = time.monotonic()
    future = recorder.submit(release.wait, 10)
    assert time.monotonic() - started < 1 and not future.done()
    release.set()
    recorder.finish()
    assert future.result() is True


def test_an_error_is_raised_in_the_caller_at_its_next_call_and_later_work_still_runs(make_weights) -> None:
    recorder = _recorder()

    def boom() -> None:
        raise OSError("disk full while writing the weights")

    failed = recorder.submit(boom)
    later = recorder.submit(lambda: "ran")
    assert later.result(timeout=10) == "ran"
    assert isinstance(failed.exception(), OSError)
    with pytest.raises(OSError, match="disk full"):
        recorder.record(make_weights())  # the next call in the caller's thread
    recorder.check()  # raised once: nothing left
    recorder.finish()
    assert recorder.task is not None and recorder.task.status == "completed"


def test_finish_raises_an_error_not_raised_before_and_fails_its_own_task() -> None:
    recorder = _recorder()
    recorder.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        recorder.finish()
    assert recorder.task is not None and recorder.task.status == "failed"
    assert recorder.task.status_reason == "division by zero"


def test_finish_with_a_training_error_drains_the_work_and_chains_its_error() -> None:
    recorder = _recorder()
    ran = threading.Event()
    recorder.submit(lambda: (time.sleep(0.2), ran.set()))
    recorder.submit(lambda: 1 / 0)
    training = RuntimeError("loss is nan")
    with pytest.raises(ZeroDivisionError) as info:
        recorder.finish(training)
    assert ran.is_set() and info.value.__cause__ is training
    assert recorder.task is not None and recorder.task.status == "failed"


def test_finish_drains_even_without_an_error(make_weights) -> None:
    recorder = _recorder()
    recorder.submit(lambda: time.sleep(0.3))
    version = recorder.submit(recorder.record, make_weights(), iteration=1)
    recorder.finish()
    assert version.done() and Model(recorder.model().id).get_version(1).state == "ready"
    with pytest.raises(ValueError, match="finished"):
        recorder.submit(print)


def test_a_bounded_queue_blocks_the_caller_instead_of_growing() -> None:
    recorder = _recorder(max_pending=2)
    release = threading.Event()
    recorder.submit(release.wait, 10)  # running
    recorder.submit(lambda: None)  # waiting: the two slots are taken
    third_in = threading.Event()

    def submit_third() -> None:
        recorder.submit(lambda: None)
        third_in.set()

    thread = threading.Thread(target=submit_third)
    thread.start()
    assert not third_in.wait(0.3)  # blocked: backpressure
    release.set()
    assert third_in.wait(10)
    thread.join()
    recorder.finish()


def test_tag_and_drop_take_the_future_of_a_record_and_skip_a_failed_one(make_weights) -> None:
    recorder = _recorder()
    first = recorder.submit(recorder.record, make_weights(), iteration=1)
    second = recorder.submit(recorder.record, make_weights(), iteration=2)
    failed = recorder.submit(recorder.record, str(make_weights().parent / "missing.safetensors"))
    recorder.submit(recorder.tag, failed, LAST_TAG)  # nothing to tag: its error is the record's
    recorder.submit(recorder.tag, second, LAST_TAG)
    recorder.submit(recorder.drop, first)
    with pytest.raises(Exception, match="missing"):
        recorder.flush()
    recorder.finish()
    model = Model(recorder.model().id)
    assert [v.version for v in model.versions] == [2]
    assert model.get_version(2).tags == [LAST_TAG]


def test_without_background_submit_runs_at_once_and_raises_directly() -> None:
    recorder = TrainingRecorder(framework="test", project="p", task_name="run")
    assert not recorder.background
    caller = threading.current_thread()
    assert recorder.submit(threading.current_thread).result() is caller
    with pytest.raises(ZeroDivisionError):
        recorder.submit(lambda: 1 / 0)
    recorder.finish()


def test_a_given_task_is_never_closed_by_background_failures() -> None:
    given = Task.init(project_name="p", task_name="mine")
    recorder = TrainingRecorder(framework="test", task=given, background=True)
    recorder.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        recorder.finish()
    assert given.status == "in_progress"


def test_interpreter_exit_runs_the_submitted_work(tmp_path: Path, make_weights) -> None:
    marker = tmp_path / "ran"
    weights = make_weights()
    script = textwrap.dedent(f"""
        import time
        from modelyard import TrainingRecorder
        recorder = TrainingRecorder(framework="test", project="p", task_name="exit", background=True)
        recorder.add_model(name="Net")
        def slow():
            time.sleep(0.5)
            open({str(marker)!r}, "w").write(recorder.model().id)
        recorder.submit(slow)
        recorder.submit(recorder.record, {str(weights)!r}, iteration=7)
        # no finish(): the script just ends
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert marker.is_file()
    model = Model(marker.read_text())
    assert [(v.iteration, v.state) for v in model.versions] == [(7, "ready")]
    task = Task.get_task(project_name="p", task_name="exit")
    assert task.status == "failed"  # the run never reached its end: its own task says so
