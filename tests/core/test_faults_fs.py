"""The fault-injecting ``faulty://`` filesystem behaves like an object store that fails exactly as planned."""

from __future__ import annotations

import errno
import gc
import threading
import time

import fsspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.testing.faults import FaultPlan, FaultyFileSystem, register


def _write(fs: FaultyFileSystem, path: str, data: bytes, chunk: int | None = None) -> None:
    chunk = chunk or max(len(data), 1)
    with fs.open(path, "wb") as f:
        for i in range(0, len(data), chunk):
            f.write(data[i : i + chunk])


# --- registration, paths, isolation ---------------------------------------------------------------


def test_register_makes_the_protocol_available(faulty_fs: FaultyFileSystem) -> None:
    register()  # idempotent
    assert isinstance(fsspec.filesystem("faulty"), FaultyFileSystem)
    fs, path = fsspec.url_to_fs("faulty://bucket/models/m.bin")
    assert isinstance(fs, FaultyFileSystem)
    assert path == "/bucket/models/m.bin"
    assert fs.unstrip_protocol(path) == "faulty://bucket/models/m.bin"
    assert fs.unstrip_protocol("faulty:///bucket/k") == "faulty://bucket/k"


def test_round_trip_through_fsspec_apis(faulty_fs: FaultyFileSystem, tmp_path) -> None:
    faulty_fs.pipe("faulty://bucket/a/one.bin", b"one")
    with fsspec.open("faulty://bucket/a/two.txt", "w") as f:
        f.write("two")
    local = tmp_path / "three.bin"
    local.write_bytes(b"three" * 1000)
    faulty_fs.put_file(str(local), "faulty://bucket/a/b/three.bin")

    assert faulty_fs.cat("faulty://bucket/a/one.bin") == b"one"
    assert faulty_fs.cat_file("faulty://bucket/a/one.bin", start=1) == b"ne"
    with fsspec.open("faulty://bucket/a/two.txt", "r") as f:
        assert f.read() == "two"
    faulty_fs.get_file("faulty://bucket/a/b/three.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == b"three" * 1000
    assert faulty_fs.find("faulty://bucket") == [
        "/bucket/a/b/three.bin",
        "/bucket/a/one.bin",
        "/bucket/a/two.txt",
    ]
    assert faulty_fs.info("faulty://bucket/a/one.bin")["size"] == 3
    assert faulty_fs.isdir("faulty://bucket/a")

    faulty_fs.rm("faulty://bucket/a", recursive=True)
    assert not faulty_fs.exists("faulty://bucket/a/one.bin")
    counts = faulty_fs.get_plan("bucket").counts
    assert (counts.writes, counts.commits, counts.deletes, counts.faults) == (3, 3, 3, 0)
    assert counts.bytes_committed == 3 + 3 + 5000
    assert counts.reads == 4  # cat, cat_file, open("r"), get_file


def test_store_is_separate_from_memory_filesystem(faulty_fs: FaultyFileSystem) -> None:
    memory = fsspec.filesystem("memory")
    faulty_fs.pipe("faulty://bucket/k", b"faulty")
    memory.pipe("memory://bucket/other", b"memory")
    try:
        assert not memory.exists("memory://bucket/k")
        assert not faulty_fs.exists("faulty://bucket/other")
    finally:
        memory.rm("memory://bucket/other")


def test_reset_forgets_objects_and_plans(faulty_fs: FaultyFileSystem) -> None:
    plan = faulty_fs.set_plan("bucket", FaultPlan(fail_every=1))
    faulty_fs.pipe("faulty://other/k", b"x")
    FaultyFileSystem.reset()
    assert faulty_fs.find("faulty://other") == []
    assert faulty_fs.get_plan("bucket") is not plan
    faulty_fs.pipe("faulty://bucket/k", b"no fault any more")


def test_a_test_leaves_objects_behind(faulty_fs: FaultyFileSystem) -> None:
    faulty_fs.pipe("faulty://bucket/left-behind", b"x")
    faulty_fs.set_plan("bucket", FaultPlan(fail_every=1))


def test_the_next_test_starts_empty(faulty_fs: FaultyFileSystem) -> None:
    assert not faulty_fs.exists("faulty://bucket/left-behind")
    assert faulty_fs.get_plan("bucket") == FaultPlan()


def test_only_immutable_object_modes(faulty_fs: FaultyFileSystem) -> None:
    faulty_fs.pipe("faulty://bucket/k", b"x")
    for mode in ("ab", "r+b", "w+b"):
        with pytest.raises(ValueError, match="supports modes rb, wb and xb"):
            faulty_fs.open("faulty://bucket/k", mode)
    with faulty_fs.open("faulty://bucket/k", "rb") as f, pytest.raises(OSError):
        f.write(b"y")
    with pytest.raises(FileNotFoundError):
        faulty_fs.open("faulty://bucket/missing", "rb")


# --- atomic appearance ----------------------------------------------------------------------------


def test_object_appears_only_when_the_stream_closes(faulty_fs: FaultyFileSystem) -> None:
    f = faulty_fs.open("faulty://bucket/k", "wb")
    f.write(b"partial")
    assert not faulty_fs.exists("faulty://bucket/k")
    f.write(b" and the rest")
    assert f.tell() == len(b"partial and the rest")
    f.close()
    assert faulty_fs.cat("faulty://bucket/k") == b"partial and the rest"


def test_exception_inside_with_block_leaves_no_object(faulty_fs: FaultyFileSystem) -> None:
    faulty_fs.pipe("faulty://bucket/k", b"old")
    with pytest.raises(RuntimeError, match="boom"), faulty_fs.open("faulty://bucket/k", "wb") as f:
        f.write(b"new but torn")
        raise RuntimeError("boom")
    assert faulty_fs.cat("faulty://bucket/k") == b"old"
    assert faulty_fs.get_plan("bucket").counts.commits == 1


def test_abandoned_stream_is_aborted_not_committed(faulty_fs: FaultyFileSystem) -> None:
    f = faulty_fs.open("faulty://bucket/k", "wb")
    f.write(b"never closed")
    del f
    gc.collect()
    assert not faulty_fs.exists("faulty://bucket/k")


def test_exclusive_create(faulty_fs: FaultyFileSystem) -> None:
    faulty_fs.pipe("faulty://bucket/k", b"first", mode="create")
    with pytest.raises(FileExistsError):
        faulty_fs.pipe("faulty://bucket/k", b"second", mode="create")
    first = faulty_fs.open("faulty://bucket/race", "xb")
    second = faulty_fs.open("faulty://bucket/race", "xb")
    first.write(b"1")
    second.write(b"2")
    first.close()
    with pytest.raises(FileExistsError):
        second.close()
    assert faulty_fs.cat("faulty://bucket/race") == b"1"


def test_open_reader_keeps_its_snapshot(faulty_fs: FaultyFileSystem) -> None:
    faulty_fs.pipe("faulty://bucket/k", b"version 1")
    with faulty_fs.open("faulty://bucket/k", "rb") as reader:
        faulty_fs.pipe("faulty://bucket/k", b"version 2")
        assert reader.read() == b"version 1"
    assert faulty_fs.cat("faulty://bucket/k") == b"version 2"


def test_transaction_commits_at_the_end(faulty_fs: FaultyFileSystem) -> None:
    with faulty_fs.transaction:
        with faulty_fs.open("faulty://bucket/k", "wb") as f:
            f.write(b"x")
        assert not faulty_fs.exists("faulty://bucket/k")
    assert faulty_fs.cat("faulty://bucket/k") == b"x"


# --- which writes fail ----------------------------------------------------------------------------


def _outcomes(fs: FaultyFileSystem, n: int, bucket: str = "bucket") -> list[bool]:
    """Attempt n writes; return which succeeded."""
    results = []
    for i in range(n):
        try:
            fs.pipe(f"faulty://{bucket}/k{i}", b"data %d" % i)
        except ConnectionResetError:
            results.append(False)
        else:
            results.append(True)
    return results


def test_fail_every_third_write(faulty_fs: FaultyFileSystem) -> None:
    plan = faulty_fs.set_plan("bucket", FaultPlan(fail_every=3))
    assert _outcomes(faulty_fs, 7) == [True, True, False, True, True, False, True]
    assert (plan.counts.writes, plan.counts.faults, plan.counts.commits) == (7, 2, 5)
    assert not faulty_fs.exists("faulty://bucket/k2")
    assert not faulty_fs.exists("faulty://bucket/k5")


def test_fail_the_nth_write(faulty_fs: FaultyFileSystem) -> None:
    faulty_fs.set_plan("bucket", FaultPlan(fail_on={2, 4}))
    assert _outcomes(faulty_fs, 5) == [True, False, True, False, True]


def test_fail_first_writes_then_heal(faulty_fs: FaultyFileSystem) -> None:
    faulty_fs.set_plan("bucket", FaultPlan(fail_first=2))
    assert _outcomes(faulty_fs, 4) == [False, False, True, True]


def test_error_alone_fails_every_write(faulty_fs: FaultyFileSystem) -> None:
    plan = faulty_fs.set_plan("bucket", FaultPlan(error=ConnectionResetError))
    assert _outcomes(faulty_fs, 3) == [False, False, False]
    plan.error = None  # heal: with no error and no selector, nothing fails
    assert _outcomes(faulty_fs, 1) == [True]


def test_plans_are_per_bucket(faulty_fs: FaultyFileSystem) -> None:
    faulty_fs.set_plan("broken", FaultPlan(fail_every=1))
    assert _outcomes(faulty_fs, 2, bucket="broken") == [False, False]
    assert _outcomes(faulty_fs, 2, bucket="fine") == [True, True]
    assert faulty_fs.get_plan("faulty://fine/any/key").counts.commits == 2


@settings(max_examples=40, deadline=None)
@given(every=st.integers(1, 5), n=st.integers(0, 20), fail_on=st.sets(st.integers(1, 20), max_size=4))
def test_exactly_the_selected_writes_fail_and_the_rest_are_intact(
    every: int, n: int, fail_on: set[int]
) -> None:
    register()
    FaultyFileSystem.reset()
    fs = FaultyFileSystem()
    plan = fs.set_plan("bucket", FaultPlan(fail_every=every, fail_on=fail_on))
    results = _outcomes(fs, n)
    expected = [not ((i + 1) % every == 0 or (i + 1) in fail_on) for i in range(n)]
    assert results == expected
    stored = {p: fs.cat(p) for p in fs.find("faulty://bucket")}
    assert stored == {f"/bucket/k{i}": b"data %d" % i for i in range(n) if expected[i]}
    assert plan.counts.faults == expected.count(False)
    FaultyFileSystem.reset()


# --- what a faulted write raises, and where -------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected_type", "expected_errno"),
    [
        (None, ConnectionResetError, errno.ECONNRESET),
        (ConnectionResetError, ConnectionResetError, errno.ECONNRESET),
        (TimeoutError, TimeoutError, errno.ETIMEDOUT),
        (PermissionError, PermissionError, errno.EACCES),
        (FileNotFoundError, FileNotFoundError, errno.ENOENT),
        (OSError(errno.ENOSPC, "No space left on device"), OSError, errno.ENOSPC),
        (lambda path: PermissionError(errno.EACCES, "Access Denied", path), PermissionError, errno.EACCES),
        (RuntimeError, RuntimeError, None),
    ],
)
def test_chosen_exception(faulty_fs: FaultyFileSystem, error, expected_type, expected_errno) -> None:
    faulty_fs.set_plan("bucket", FaultPlan(fail_every=1, error=error))
    raised = []
    for _ in range(2):
        with pytest.raises(expected_type) as info:
            faulty_fs.pipe("faulty://bucket/k", b"x")
        raised.append(info.value)
    assert type(raised[0]) is expected_type
    assert getattr(raised[0], "errno", None) == expected_errno
    assert raised[0] is not raised[1]  # a fresh exception each time: tracebacks never pile up
    assert not faulty_fs.exists("faulty://bucket/k")


@pytest.mark.parametrize("fail_at", ["open", "write", "close"])
def test_fail_at(faulty_fs: FaultyFileSystem, fail_at: str) -> None:
    faulty_fs.pipe("faulty://bucket/k", b"previous good version")
    plan = faulty_fs.set_plan("bucket", FaultPlan(fail_every=1, fail_at=fail_at))  # type: ignore[arg-type]
    stage = "open"
    with pytest.raises(ConnectionResetError):
        f = faulty_fs.open("faulty://bucket/k", "wb")
        stage = "write"
        f.write(b"new")
        f.write(b" version")
        stage = "close"
        f.close()
    assert stage == fail_at
    assert faulty_fs.cat("faulty://bucket/k") == b"previous good version"
    assert (plan.counts.writes, plan.counts.faults, plan.counts.commits) == (1, 1, 0)


def test_failed_stream_keeps_failing_and_closes_quietly(faulty_fs: FaultyFileSystem) -> None:
    faulty_fs.set_plan("bucket", FaultPlan(fail_every=1, fail_at="write"))
    f = faulty_fs.open("faulty://bucket/k", "wb")
    with pytest.raises(ConnectionResetError):
        f.write(b"a")
    with pytest.raises(ConnectionResetError):
        f.write(b"b")
    f.close()  # no second error that would mask the first one inside a `with` block
    assert not faulty_fs.exists("faulty://bucket/k")


def test_drop_stream_after_k_bytes(faulty_fs: FaultyFileSystem) -> None:
    plan = faulty_fs.set_plan("bucket", FaultPlan(fail_on={1}, drop_after_bytes=2500))
    f = faulty_fs.open("faulty://bucket/k", "wb")
    f.write(b"x" * 1000)
    f.write(b"x" * 1000)
    with pytest.raises(ConnectionResetError):
        f.write(b"x" * 1000)
    f.close()
    assert not faulty_fs.exists("faulty://bucket/k")
    _write(faulty_fs, "faulty://bucket/k", b"y" * 5000, chunk=1000)  # the retry is not faulted
    assert faulty_fs.cat("faulty://bucket/k") == b"y" * 5000
    assert (plan.counts.writes, plan.counts.faults, plan.counts.commits) == (2, 1, 1)


def test_drop_after_more_bytes_than_the_stream_has_fails_at_close(faulty_fs: FaultyFileSystem) -> None:
    faulty_fs.set_plan("bucket", FaultPlan(drop_after_bytes=10_000, error=TimeoutError))
    f = faulty_fs.open("faulty://bucket/k", "wb")
    f.write(b"short")
    with pytest.raises(TimeoutError):
        f.close()
    assert not faulty_fs.exists("faulty://bucket/k")


def test_copy_and_move_are_write_operations(faulty_fs: FaultyFileSystem) -> None:
    faulty_fs.pipe("faulty://bucket/tmp/k", b"payload")
    plan = faulty_fs.set_plan("bucket", FaultPlan(fail_on={1}))
    with pytest.raises(ConnectionResetError):
        faulty_fs.mv("faulty://bucket/tmp/k", "faulty://bucket/final/k")
    assert faulty_fs.exists("faulty://bucket/tmp/k")
    assert not faulty_fs.exists("faulty://bucket/final/k")
    faulty_fs.mv("faulty://bucket/tmp/k", "faulty://bucket/final/k")
    assert faulty_fs.cat("faulty://bucket/final/k") == b"payload"
    assert not faulty_fs.exists("faulty://bucket/tmp/k")
    assert (plan.counts.writes, plan.counts.faults, plan.counts.deletes) == (2, 1, 1)


def test_missing_bucket(faulty_fs: FaultyFileSystem) -> None:
    faulty_fs.pipe("faulty://gone/k", b"x")
    plan = faulty_fs.set_plan("gone", FaultPlan(missing_bucket=True))
    with pytest.raises(FileNotFoundError, match="bucket does not exist"):
        faulty_fs.pipe("faulty://gone/new", b"x")
    calls = (faulty_fs.cat, faulty_fs.info, faulty_fs.ls, faulty_fs.rm, lambda p: faulty_fs.open(p, "rb"))
    for call in calls:
        with pytest.raises(FileNotFoundError):
            call("faulty://gone/k")
    assert not faulty_fs.exists("faulty://gone/k")
    assert plan.counts.writes == 1
    assert plan.counts.commits == 0
    faulty_fs.pipe("faulty://other/k", b"other buckets work")


def test_plan_validation() -> None:
    for bad in ({"fail_every": 0}, {"fail_first": -1}, {"fail_at": "later"}, {"drop_after_bytes": -1},
                {"bandwidth": 0}):
        with pytest.raises(ValueError):
            FaultPlan(**bad)  # type: ignore[arg-type]


# --- throttling and threads -----------------------------------------------------------------------


def test_bandwidth_throttles_writes(faulty_fs: FaultyFileSystem) -> None:
    faulty_fs.set_plan("bucket", FaultPlan(bandwidth=500_000))
    start = time.monotonic()
    _write(faulty_fs, "faulty://bucket/k", b"z" * 100_000, chunk=10_000)
    assert time.monotonic() - start >= 0.19


def test_bandwidth_is_shared_by_concurrent_writers(faulty_fs: FaultyFileSystem) -> None:
    faulty_fs.set_plan("bucket", FaultPlan(bandwidth=1_000_000))
    threads = [
        threading.Thread(target=_write, args=(faulty_fs, f"faulty://bucket/k{i}", b"z" * 50_000, 5_000))
        for i in range(4)
    ]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.monotonic() - start >= 0.19  # 200 kB through one 1 MB/s link
    assert faulty_fs.get_plan("bucket").counts.bytes_committed == 200_000


def test_instances_created_in_other_threads_share_store_and_plans(faulty_fs: FaultyFileSystem) -> None:
    # fsspec caches one instance per thread, so an upload worker gets its own instance.
    plan = faulty_fs.set_plan("bucket", FaultPlan(fail_every=2))
    seen: dict[str, object] = {}

    def worker() -> None:
        fs = fsspec.filesystem("faulty")
        seen["fs"] = fs
        for i in range(4):
            try:
                fs.pipe(f"faulty://bucket/w{i}", b"from worker")
            except ConnectionResetError:
                pass

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen["fs"] is not fsspec.filesystem("faulty")
    assert plan.counts.faults == 2
    assert faulty_fs.find("faulty://bucket") == ["/bucket/w0", "/bucket/w2"]


def test_counts_are_exact_under_concurrency(faulty_fs: FaultyFileSystem) -> None:
    plan = faulty_fs.set_plan("bucket", FaultPlan(fail_every=3))
    failures = []

    def worker(n: int) -> None:
        fs = fsspec.filesystem("faulty")
        for i in range(50):
            try:
                fs.pipe(f"faulty://bucket/t{n}/{i}", b"x")
            except ConnectionResetError:
                failures.append(1)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert plan.counts.writes == 400
    assert plan.counts.faults == len(failures) == 133
    assert plan.counts.commits == len(faulty_fs.find("faulty://bucket")) == 267
