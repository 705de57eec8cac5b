"""Storage faults against the upload engine: retries, permanent errors, torn sources, backpressure, dedup
(RELIABILITY.md R1, R2, R9, R10; issue 3 items 2, 5, 7)."""

from __future__ import annotations

import errno
import hashlib
import threading
import time
from pathlib import Path

import fsspec
import numpy as np
import pytest

import modelyard
from modelyard import Model, OutputModel, Task, _storage, _uploads
from modelyard.testing.faults import FaultPlan, FaultyFileSystem


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stored_sha(uri: str) -> str:
    protocol, path = _storage.split_uri(uri)
    return hashlib.sha256(fsspec.filesystem(protocol).cat_file(path)).hexdigest()


@pytest.fixture
def out(task) -> OutputModel:
    return OutputModel(task, name="m")


def test_r1_storage_failing_every_third_write_is_retried(out, make_weights, faulty_fs) -> None:
    plan = FaultyFileSystem.set_plan("bucket", FaultPlan(fail_every=3))
    sources = [make_weights(value=i) for i in range(5)]
    hashes = [digest(p) for p in sources]
    for p in sources:
        out.update_weights(str(p), upload_uri="faulty://bucket/models", auto_delete_file=False)
    OutputModel.wait_for_uploads()
    assert plan.counts.faults >= 1, "the plan injected no fault"
    assert [v.state for v in out.versions] == ["ready"] * 5
    assert [v.sha256 for v in out.versions] == hashes
    assert [stored_sha(v.uri) for v in out.versions] == hashes


def test_r1_stream_dropped_mid_upload_is_retried_from_the_snapshot(out, make_weights, faulty_fs) -> None:
    plan = FaultyFileSystem.set_plan("bucket", FaultPlan(fail_on={1}, drop_after_bytes=100))
    src = make_weights(shape=(64, 64))
    expected = digest(src)
    out.update_weights(str(src), upload_uri="faulty://bucket/m")
    OutputModel.wait_for_uploads()
    assert plan.counts.faults == 1 and plan.counts.commits == 1
    assert out.versions[0].sha256 == expected == stored_sha(out.url)


@pytest.mark.parametrize("error", [PermissionError, OSError(errno.ENOSPC, "No space left on device")],
                         ids=["permission", "enospc"])
def test_r2_permanent_errors_fail_at_once_and_keep_the_source(out, make_weights, faulty_fs, error) -> None:
    plan = FaultyFileSystem.set_plan("bucket", FaultPlan(error=error))
    src = make_weights()
    out.update_weights(str(src), upload_uri="faulty://bucket/m")
    started = time.monotonic()
    with pytest.raises(modelyard.UploadError) as info:
        OutputModel.wait_for_uploads()
    assert time.monotonic() - started < 5
    assert plan.counts.writes == 1, "a permanent error was retried"
    (version,) = out.versions
    assert version.state == "failed" and version.error and info.value.cause == version.error
    assert src.exists()
    assert out.url is None


def test_r2_missing_bucket_is_permanent(out, make_weights, faulty_fs) -> None:
    FaultyFileSystem.set_plan("nobucket", FaultPlan(missing_bucket=True))
    out.update_weights(str(make_weights()), upload_uri="faulty://nobucket/m")
    with pytest.raises(modelyard.UploadError, match="FileNotFoundError"):
        OutputModel.wait_for_uploads()


def test_transient_errors_give_up_at_the_deadline(out, make_weights, faulty_fs, monkeypatch) -> None:
    monkeypatch.setenv("MODELYARD_RETRY_DEADLINE", "1")
    plan = FaultyFileSystem.set_plan("bucket", FaultPlan(error=ConnectionResetError))
    src = make_weights()
    out.update_weights(str(src), upload_uri="faulty://bucket/m")
    with pytest.raises(modelyard.UploadError, match="ConnectionResetError"):
        OutputModel.wait_for_uploads()
    assert plan.counts.writes >= 2, "a transient error was not retried"
    assert src.exists() and out.versions[0].state == "failed"


@pytest.mark.parametrize("exc, transient", [
    (ConnectionResetError(), True), (TimeoutError(), True), (OSError(errno.ETIMEDOUT, "x"), True),
    (OSError("503 Service Unavailable"), True), (OSError("SlowDown: please reduce"), True),
    (PermissionError(), False), (FileNotFoundError(), False), (OSError(errno.ENOSPC, "full"), False),
    (modelyard.IntegrityError("x"), False), (ValueError("bad"), False),
])
def test_retry_classification(exc, transient) -> None:
    assert _uploads.is_transient(exc) is transient


# -- R9: the source changes after update_weights returns ---------------------------------------------------


def _pause_at(phase: str, action) -> None:
    def hook(name: str, job) -> None:
        if name == phase:
            _uploads._phase_hook = None
            action()

    _uploads._phase_hook = hook


def test_r9_source_deleted_after_return_still_uploads_the_bytes(out, make_weights) -> None:
    src = make_weights()
    expected = digest(src)
    _pause_at("started", src.unlink)
    out.update_weights(str(src), auto_delete_file=False, snapshot="link")
    OutputModel.wait_for_uploads()
    assert out.versions[0].sha256 == expected == stored_sha(out.url)


def test_r9_source_replaced_by_a_new_file_uploads_the_original(out, make_weights, tmp_path) -> None:
    src = make_weights()
    expected = digest(src)
    replacement = tmp_path / "replacement"
    replacement.write_bytes(b"new checkpoint")
    _pause_at("started", lambda: replacement.replace(src))
    out.update_weights(str(src))
    OutputModel.wait_for_uploads()
    assert out.versions[0].sha256 == expected == stored_sha(out.url)
    assert src.read_bytes() == b"new checkpoint"  # the new file is not deleted: it is not what we took


@pytest.mark.parametrize("phase", ["started", "streaming"])
def test_r9_in_place_rewrite_of_a_linked_source_fails_loudly(out, make_weights, phase) -> None:
    src = make_weights(shape=(1024, 1024))  # 4 MiB: several reads, so "streaming" is mid-file

    def rewrite() -> None:
        with open(src, "r+b") as f:
            f.seek(2_000_000)
            f.write(b"\xff" * 1000)
        time.sleep(0.01)

    _pause_at(phase, rewrite)
    out.update_weights(str(src), auto_delete_file=False, snapshot="link")
    with pytest.raises(modelyard.UploadError, match="changed"):
        OutputModel.wait_for_uploads()
    assert out.versions[0].state == "failed" and out.url is None
    assert src.exists()


def test_r9_copy_snapshot_is_immune_to_in_place_rewrites(out, make_weights) -> None:
    src = make_weights(shape=(256, 256))
    expected = digest(src)

    def rewrite() -> None:
        src.write_bytes(b"garbage" * 1000)

    _pause_at("started", rewrite)
    out.update_weights(str(src), auto_delete_file=False)  # default snapshot for files we do not own: copy
    OutputModel.wait_for_uploads()
    assert out.versions[0].sha256 == expected == stored_sha(out.url)


# -- R10: backpressure --------------------------------------------------------------------------------------


def test_r10_checkpoints_faster_than_bandwidth_stay_bounded(task, make_weights, faulty_fs, monkeypatch) -> None:
    monkeypatch.setenv("MODELYARD_MAX_PENDING_UPLOADS", "3")
    monkeypatch.setenv("MODELYARD_UPLOAD_WORKERS", "2")
    modelyard.testing.reset_state()
    out = OutputModel(Task.get_task(task_id=task.id), name="bp")
    FaultyFileSystem.set_plan("slow", FaultPlan(bandwidth=2_000_000))
    sources = [make_weights(value=i, shape=(256, 256)) for i in range(8)]  # 256 KiB each
    hashes = [digest(p) for p in sources]
    engine = _uploads.get_engine()
    most_pending, stop = [0], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            most_pending[0] = max(most_pending[0], len(engine.pending()))
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    waits = []
    for p in sources:
        t0 = time.perf_counter()
        out.update_weights(str(p), upload_uri="faulty://slow/m")
        waits.append(time.perf_counter() - t0)
    OutputModel.wait_for_uploads()
    stop.set()
    watcher.join()
    assert most_pending[0] <= 3
    assert max(waits) > 0.05, "the producer never waited: no backpressure"
    assert [v.sha256 for v in out.versions] == hashes  # never dropped, never torn
    assert all(v.state == "ready" for v in out.versions)


# -- deduplication ------------------------------------------------------------------------------------------


def test_identical_bytes_are_stored_once_and_deletion_respects_users(out, make_weights) -> None:
    a = make_weights(value=7)
    b = make_weights(value=7)
    assert digest(a) == digest(b)
    out.update_weights(str(a))
    OutputModel.wait_for_uploads()
    out.update_weights(str(b))
    OutputModel.wait_for_uploads()
    v1, v2 = out.versions
    assert v1.uri == v2.uri and v1.sha256 == v2.sha256
    folder = Path(v1.uri[len("file://"):]).parents[1]
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == ["model.safetensors"]
    model = Model(out.id)
    assert model.remove_version(1)
    assert Path(v1.uri[len("file://"):]).exists(), "an object another version uses was deleted"
    assert model.remove_version(2)
    assert not Path(v1.uri[len("file://"):]).exists()


# -- real S3 (moto server) ----------------------------------------------------------------------------------


@pytest.mark.s3
def test_s3_destination_multipart_and_read_back(task, s3_bucket, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MODELYARD_PART_SIZE", str(5 * 1024 * 1024))
    out = OutputModel(task)
    src = tmp_path / "big.safetensors"
    modelyard.save_safetensors({"w": np.random.default_rng(0).random(3 * 1024 * 1024, np.float32)}, src)
    expected = digest(src)
    uri = out.update_weights(str(src), upload_uri=f"{s3_bucket}/models", iteration=1)
    assert uri.startswith(f"{s3_bucket}/models/proj/")
    OutputModel.wait_for_uploads()
    assert out.versions[0].state == "ready" and out.versions[0].sha256 == expected
    assert stored_sha(uri) == expected
    assert digest(Path(out.get_weights(raise_on_error=True))) == expected
    assert not src.exists()


@pytest.mark.s3
def test_s3_package_and_remove(task, s3_bucket, tmp_path) -> None:
    folder = tmp_path / "pkg"
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    out = OutputModel(task)
    uri = out.update_weights_package(weights_path=str(folder), upload_uri=s3_bucket, auto_delete_file=False)
    local = Path(out.get_weights_package(return_path=True, raise_on_error=True))
    assert (local / "tokenizer" / "vocab.txt").read_text() == "a\nb\n"
    fs = fsspec.filesystem("s3")
    assert fs.exists(_storage.split_uri(uri)[1] + "/modelyard-manifest.json")
    assert Model.remove(out.id, force=True, raise_on_errors=True)
    assert not fs.exists(_storage.split_uri(uri)[1])


@pytest.mark.s3
def test_s3_missing_bucket_fails_without_retry(task, s3_server, make_weights) -> None:
    out = OutputModel(task)
    src = make_weights()
    out.update_weights(str(src), upload_uri="s3://no-such-bucket-modelyard/x")
    started = time.monotonic()
    with pytest.raises(modelyard.UploadError):
        OutputModel.wait_for_uploads()
    assert time.monotonic() - started < 30
    assert src.exists()


def test_part_size_stays_under_the_part_limit() -> None:
    for size in (0, 1, 5 * 2**30, 2 * 2**40, 5 * 2**40):
        part = _storage.choose_part_size(size)
        assert part >= 5 * 2**20
        assert size / part <= 10_000
