"""A fault-injecting fsspec filesystem for testing storage code against failing object stores.

:class:`FaultyFileSystem` is an in-memory object store registered under the ``faulty`` protocol. URLs look
like S3 URLs: ``faulty://<bucket>/<key>``. Each bucket can be given a :class:`FaultPlan` that makes writes
fail (every Nth, the Nth, the first N, or all of them), drops a stream after K bytes, raises a chosen
exception, throttles bandwidth, or pretends the bucket does not exist. Every plan also counts the calls made
against its bucket, so a test can assert that retries happened, or did not.

All state (the objects and the plans) lives on the class, not on instances. fsspec caches one instance per
thread, so the upload engine's worker threads get their own instances from ``fsspec.filesystem("faulty")``
or ``fsspec.url_to_fs("faulty://bucket/key")``; they still see the objects and plans the test set up. The
state is per process: a subprocess starts with an empty store and no plans.

Objects appear atomically, like S3 objects: a write becomes visible only when its stream is closed without
error. A write that fails, is dropped, is abandoned without ``close()``, or whose ``with`` block raises leaves
no object at its key (and an existing object at that key untouched).

Example::

    from modelyard.testing.faults import FaultPlan, FaultyFileSystem, register

    register()
    FaultyFileSystem.reset()
    plan = FaultyFileSystem.set_plan("bucket", FaultPlan(fail_every=3))
    ...  # code under test writes to "faulty://bucket/weights/..."
    assert plan.counts.faults == 1
    assert fsspec.filesystem("faulty").cat("faulty://bucket/weights/m.bin") == expected

Plans for common faults::

    FaultPlan(fail_every=3)                                   # 3rd, 6th, ... write: ConnectionResetError
    FaultPlan(fail_on={2}, error=TimeoutError)                # only the 2nd write fails
    FaultPlan(fail_first=2)                                   # two transient failures, then success
    FaultPlan(error=PermissionError)                          # every write: permanent 403-like error
    FaultPlan(error=OSError(errno.ENOSPC, "No space left on device"))
    FaultPlan(fail_on={1}, drop_after_bytes=4096)             # 1st stream dies after 4 KiB
    FaultPlan(fail_every=1, fail_at="close")                  # all bytes sent, then the final PUT fails
    FaultPlan(bandwidth=1_000_000)                            # 1 MB/s shared by all writers to the bucket
    FaultPlan(missing_bucket=True)                            # FileNotFoundError for every operation
"""

from __future__ import annotations

import copy
import errno
import io
import os
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, cast

import fsspec
from fsspec.implementations.memory import MemoryFile, MemoryFileSystem

__all__ = ["CallCounts", "FaultPlan", "FaultyFileSystem", "register"]

PROTOCOL = "faulty"

#: An exception to raise: a class, an instance (copied for each fault), or a factory called with the path.
ErrorSpec = type[BaseException] | BaseException | Callable[[str], BaseException]

# errno values given to OSError subclasses when a plan names only the class, so that retry classifiers which
# look at ``errno`` see what the operating system would report.
_ERRNO_OF: dict[type[BaseException], int] = {
    ConnectionResetError: errno.ECONNRESET,
    ConnectionAbortedError: errno.ECONNABORTED,
    ConnectionRefusedError: errno.ECONNREFUSED,
    BrokenPipeError: errno.EPIPE,
    TimeoutError: errno.ETIMEDOUT,
    PermissionError: errno.EACCES,
    FileNotFoundError: errno.ENOENT,
    FileExistsError: errno.EEXIST,
}

_INJECTED = "injected by FaultyFileSystem"


@dataclass
class CallCounts:
    """Counts of the operations a :class:`FaultyFileSystem` bucket was asked to perform.

    Attributes:
        writes: Write operations started: opens for writing (including ``pipe``, ``put`` and ``touch``) and
            copies into the bucket. Each one is an attempt; a retried upload counts once per attempt.
        reads: Opens for reading and ``cat`` calls.
        commits: Objects that appeared (writes that completed).
        deletes: Objects deleted.
        faults: Faults injected (failed writes, dropped streams, missing-bucket errors).
        bytes_committed: Bytes in the objects that appeared.
    """

    writes: int = 0
    reads: int = 0
    commits: int = 0
    deletes: int = 0
    faults: int = 0
    bytes_committed: int = 0


@dataclass
class FaultPlan:
    """What goes wrong in one bucket of a :class:`FaultyFileSystem`, and what the bucket was asked to do.

    Write operations are numbered from 1 in the order they start. A write is *faulted* when it is selected by
    ``fail_every``, ``fail_on`` or ``fail_first``; when none of those is given but ``error`` or
    ``drop_after_bytes`` is, every write is faulted. A faulted write raises ``error`` at the point named by
    ``fail_at`` (or after ``drop_after_bytes`` bytes) and leaves no object behind. Reads are never faulted,
    except by ``missing_bucket``.

    The fields may be changed while a test runs (for example to heal the store); ``counts`` keeps counting.

    Attributes:
        fail_every: Fault every write whose number is a multiple of this (``3``: the 3rd, 6th, ...).
        fail_on: Fault the writes with these numbers (``{2}``: only the 2nd).
        fail_first: Fault the first this many writes, then let the others succeed.
        error: The exception to raise: a class (instantiated with a message naming the path, and the usual
            errno for ``OSError`` subclasses), an instance (a copy is raised each time), or a callable taking
            the path and returning an exception. ``None`` means ``ConnectionResetError``.
        fail_at: Where a faulted write fails: ``"open"`` (before any byte), ``"write"`` (on the first
            ``write()``), or ``"close"`` (after every byte was accepted, like a failing single PUT).
        drop_after_bytes: Make faulted writes accept this many bytes, then fail on the ``write()`` that
            goes past it (or at ``close()`` if the stream is shorter). Overrides ``fail_at``.
        bandwidth: Throttle every write into the bucket to this many bytes per second in total, shared by
            all concurrent writers (``None``: unthrottled). Implemented with sleeps inside ``write()``.
        missing_bucket: Make every operation on the bucket raise ``FileNotFoundError``, as s3fs does for a
            bucket that does not exist.
        counts: The calls made against the bucket so far.
    """

    fail_every: int | None = None
    fail_on: Collection[int] = ()
    fail_first: int = 0
    error: ErrorSpec | None = None
    fail_at: Literal["open", "write", "close"] = "open"
    drop_after_bytes: int | None = None
    bandwidth: float | None = None
    missing_bucket: bool = False
    counts: CallCounts = field(default_factory=CallCounts, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)
    _link_free_at: float = field(default=0.0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.fail_every is not None and self.fail_every < 1:
            raise ValueError(f"fail_every must be >= 1, got {self.fail_every}")
        if self.fail_first < 0:
            raise ValueError(f"fail_first must be >= 0, got {self.fail_first}")
        if self.fail_at not in ("open", "write", "close"):
            raise ValueError(f"fail_at must be 'open', 'write' or 'close', got {self.fail_at!r}")
        if self.drop_after_bytes is not None and self.drop_after_bytes < 0:
            raise ValueError(f"drop_after_bytes must be >= 0, got {self.drop_after_bytes}")
        if self.bandwidth is not None and self.bandwidth <= 0:
            raise ValueError(f"bandwidth must be > 0 bytes/s, got {self.bandwidth}")

    def make_error(self, path: str) -> BaseException:
        """Build a fresh exception of the kind this plan injects.

        Args:
            path: The path of the operation that fails, used in the message.

        Returns:
            A new exception, never one that was raised before, so tracebacks do not accumulate.
        """
        spec = self.error if self.error is not None else ConnectionResetError
        if isinstance(spec, type) and issubclass(spec, BaseException):
            code = next((n for cls, n in _ERRNO_OF.items() if issubclass(spec, cls)), None)
            if code is not None and issubclass(spec, OSError):
                return spec(code, f"{os.strerror(code)} ({_INJECTED})", path)
            return spec(f"{spec.__name__} {_INJECTED} at {path}")
        if isinstance(spec, BaseException):
            try:
                return copy.copy(spec)
            except Exception:  # an exception whose constructor copy cannot replay: raise the original
                return spec.with_traceback(None)
        return cast(Callable[[str], BaseException], spec)(path)

    def _missing_bucket_error(self, bucket: str) -> FileNotFoundError:
        return FileNotFoundError(errno.ENOENT, f"The specified bucket does not exist ({_INJECTED})", bucket)

    def _check_bucket(self, bucket: str) -> None:
        if self.missing_bucket:
            with self._lock:
                self.counts.faults += 1
            raise self._missing_bucket_error(bucket)

    def _start_write(self) -> bool:
        """Count a new write operation and return whether it is faulted."""
        with self._lock:
            self.counts.writes += 1
            number = self.counts.writes
            selectors = self.fail_every is not None or bool(self.fail_on) or self.fail_first > 0
            if not selectors:
                return self.error is not None or self.drop_after_bytes is not None
            return (
                (self.fail_every is not None and number % self.fail_every == 0)
                or number in self.fail_on
                or number <= self.fail_first
            )

    def _count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self.counts, name, getattr(self.counts, name) + amount)

    def _throttle(self, nbytes: int) -> None:
        """Sleep long enough that all writers to the bucket share ``bandwidth`` bytes per second."""
        bandwidth = self.bandwidth
        if not bandwidth or nbytes <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._link_free_at)
            self._link_free_at = start + nbytes / bandwidth
            wake = self._link_free_at
        delay = wake - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class _PendingObject(io.BufferedIOBase):
    """A stream being written to a :class:`FaultyFileSystem`; its object appears only on a clean close."""

    def __init__(self, fs: FaultyFileSystem, path: str, mode: str, plan: FaultPlan, faulted: bool,
                 autocommit: bool) -> None:
        super().__init__()
        self.fs = fs
        self.path = path
        self.mode = mode
        self.autocommit = autocommit
        self._plan = plan
        self._faulted = faulted
        self._buffer = io.BytesIO()
        self._failed = False
        self._ready: bytes | None = None  # bytes closed cleanly, awaiting a transaction's commit

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._buffer.tell()

    def _fail(self) -> BaseException:
        self._failed = True
        self._buffer = io.BytesIO()
        self._plan._count("faults")
        return self._plan.make_error(self.path)

    def write(self, data: Any) -> int:
        if self.closed:
            raise ValueError("write to closed file")
        if self._failed:
            raise self._plan.make_error(self.path)
        view = memoryview(data).cast("B")
        size = len(view)
        plan = self._plan
        if self._faulted:
            limit = plan.drop_after_bytes
            if limit is not None:
                room = limit - self._buffer.tell()
                if size > room:
                    plan._throttle(room)
                    raise self._fail()
            elif plan.fail_at == "write":
                raise self._fail()
        plan._throttle(size)
        self._buffer.write(view)
        return size

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._failed:
                return
            if self._faulted:  # a faulted stream that has not failed yet fails at the end
                raise self._fail()
            self._ready = self._buffer.getvalue()
            if self.autocommit:
                self.commit()
        finally:
            self._buffer = io.BytesIO()
            super().close()

    def commit(self) -> None:
        """Make the object visible (called by ``close()``, or by an fsspec transaction at its end)."""
        if self._ready is None:
            return
        data, self._ready = self._ready, None
        self.fs._commit(self.path, data, exclusive="x" in self.mode)

    def discard(self) -> None:
        """Drop the stream: no object appears."""
        self._failed = True
        self._ready = None
        self._buffer = io.BytesIO()
        super().close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()

    def __del__(self) -> None:
        # An abandoned stream is an aborted upload, never a commit (io.IOBase.__del__ would close it).
        if not self.closed:
            self.discard()


class _StoredObject(io.BytesIO):
    """A read-only snapshot of an object; later writes to the key do not change what it returns."""

    def __init__(self, fs: FaultyFileSystem, path: str, data: bytes) -> None:
        super().__init__(data)
        self.fs = fs
        self.path = path
        self.size = len(data)

    def writable(self) -> bool:
        return False

    def write(self, data: Any) -> int:
        raise io.UnsupportedOperation(f"{self.path} is open for reading")

    def truncate(self, size: int | None = None) -> int:
        raise io.UnsupportedOperation(f"{self.path} is open for reading")


class FaultyFileSystem(MemoryFileSystem):
    """An in-memory object store that fails on purpose, registered as ``faulty://``.

    Paths are ``faulty://<bucket>/<key>``; the bucket (the URL host) selects the :class:`FaultPlan`. A bucket
    without a plan gets an empty one on first use, so its calls are counted but nothing fails. Only ``rb``,
    ``wb`` and ``xb`` modes are supported: objects are immutable, as on S3.

    The objects and the plans are class attributes shared by every instance in the process, and separate from
    ``memory://``'s global store. Call :meth:`reset` between tests.
    """

    protocol = PROTOCOL
    root_marker = "/"
    store: ClassVar[dict[str, Any]] = {}
    pseudo_dirs: ClassVar[list[str]] = [""]
    _plans: ClassVar[dict[str, FaultPlan]] = {}
    _state_lock: ClassVar[threading.RLock] = threading.RLock()

    # --- plans ------------------------------------------------------------------------------------

    @classmethod
    def set_plan(cls, bucket: str, plan: FaultPlan | None = None) -> FaultPlan:
        """Give a bucket a fault plan, replacing any previous one.

        Args:
            bucket: The bucket name (the host of ``faulty://<bucket>/...``).
            plan: The plan; ``None`` installs an empty plan (no faults, fresh counts).

        Returns:
            The installed plan, whose ``counts`` the test can inspect later.
        """
        plan = plan if plan is not None else FaultPlan()
        with cls._state_lock:
            cls._plans[cls._bucket_name(bucket)] = plan
        return plan

    @classmethod
    def get_plan(cls, bucket: str) -> FaultPlan:
        """Return a bucket's fault plan, installing an empty one if it has none.

        Args:
            bucket: The bucket name, or any ``faulty://`` URL or path inside it.

        Returns:
            The plan in force for that bucket.
        """
        name = cls._bucket_name(bucket)
        with cls._state_lock:
            plan = cls._plans.get(name)
            if plan is None:
                plan = cls._plans[name] = FaultPlan()
            return plan

    @classmethod
    def reset(cls) -> None:
        """Forget every object, directory and plan, and drop cached instances."""
        with cls._state_lock:
            cls.store.clear()
            cls.pseudo_dirs[:] = [""]
            cls._plans.clear()
        cls.clear_instance_cache()

    # --- paths ------------------------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        if isinstance(path, str) and path.startswith(f"{PROTOCOL}://"):
            path = "/" + path[len(PROTOCOL) + 3 :]
        return str(super()._strip_protocol(path))

    def unstrip_protocol(self, name: str) -> str:
        """Return the canonical URL ``faulty://<bucket>/<key>`` of a path."""
        return f"{PROTOCOL}://{self._strip_protocol(name).lstrip('/')}"

    @classmethod
    def _bucket_name(cls, path: str) -> str:
        return cls._strip_protocol(path).lstrip("/").split("/", 1)[0]

    def _plan_for(self, path: str) -> FaultPlan:
        return self.get_plan(self._bucket_name(path))

    def _checked_plan(self, path: str) -> FaultPlan:
        plan = self._plan_for(path)
        plan._check_bucket(self._bucket_name(path))
        return plan

    # --- writes -----------------------------------------------------------------------------------

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: Any = None,
        autocommit: bool = True,
        cache_options: Any = None,
        **kwargs: Any,
    ) -> Any:
        path = self._strip_protocol(path)
        if mode == "rb":
            plan = self._checked_plan(path)
            plan._count("reads")
            obj = self.store.get(path)
            if obj is None:
                if path in self.pseudo_dirs or self.isdir(path):
                    raise IsADirectoryError(path)
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
            return _StoredObject(self, path, obj.getvalue())
        if mode not in ("wb", "xb"):
            raise ValueError(f"{type(self).__name__} supports modes rb, wb and xb (objects are immutable), "
                             f"not {mode!r}")
        plan = self._plan_for(path)
        if plan.missing_bucket:
            plan._count("writes")
        plan._check_bucket(self._bucket_name(path))
        if path in self.pseudo_dirs:
            raise IsADirectoryError(path)
        if mode == "xb" and path in self.store:
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path)
        faulted = plan._start_write()
        if faulted and plan.fail_at == "open" and plan.drop_after_bytes is None:
            plan._count("faults")
            raise plan.make_error(path)
        return _PendingObject(self, path, mode, plan, faulted, autocommit)

    def _commit(self, path: str, data: bytes, *, exclusive: bool) -> None:
        with self._state_lock:
            if exclusive and path in self.store:
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path)
            self.store[path] = MemoryFile(None, path, data)
        plan = self._plan_for(path)
        plan._count("commits")
        plan._count("bytes_committed", len(data))

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        """Write ``value`` to ``path`` as one write operation (faults apply)."""
        with self.open(path, "xb" if mode == "create" else "wb") as f:
            f.write(value)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy an object within the store as one write operation into ``path2`` (faults apply)."""
        path1 = self._strip_protocol(path1)
        path2 = self._strip_protocol(path2)
        self._checked_plan(path1)
        if self.isdir(path1) and path1 not in self.store:
            super().cp_file(path1, path2)
            return
        source = self.store.get(path1)
        if source is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path1)
        plan = self._plan_for(path2)
        if plan.missing_bucket:
            plan._count("writes")
        plan._check_bucket(self._bucket_name(path2))
        if plan._start_write():
            plan._count("faults")
            raise plan.make_error(path2)
        self._commit(path2, source.getvalue(), exclusive=False)

    # --- reads, listings, deletes -----------------------------------------------------------------

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        """Return the bytes of an object (counted as a read)."""
        path = self._strip_protocol(path)
        self._checked_plan(path)._count("reads")
        return bytes(super().cat_file(path, start=start, end=end, **kwargs))

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """Return the details of an object or directory."""
        self._checked_plan(self._strip_protocol(path))
        return dict(super().info(path, **kwargs))

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        """List a directory."""
        path = self._strip_protocol(path)
        if path:
            self._checked_plan(path)
        return super().ls(path, detail=detail, **kwargs)

    def find(self, path: str, maxdepth: int | None = None, withdirs: bool = False, detail: bool = False,
             **kwargs: Any) -> Any:
        """List every object under a path."""
        stripped = self._strip_protocol(path)
        if stripped:
            self._checked_plan(stripped)
        return super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=detail, **kwargs)

    def _rm(self, path: str) -> None:
        path = self._strip_protocol(path)
        plan = self._checked_plan(path)
        with self._state_lock:
            super()._rm(path)
        plan._count("deletes")


def register() -> None:
    """Register :class:`FaultyFileSystem` with fsspec under the ``faulty`` protocol (idempotent)."""
    fsspec.register_implementation(PROTOCOL, FaultyFileSystem, clobber=True)
