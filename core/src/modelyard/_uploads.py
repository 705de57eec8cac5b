"""The upload engine: bounded queue, non-daemon workers, journal, classified retries, exit drain.

``update_weights`` journals a version as ``pending`` in the registry and hands a :class:`Job` to the engine;
the caller continues at once. Workers stream each job to its destination while hashing, commit atomically,
and only then mark the version ``ready`` and delete the caller's source. A process that dies leaves its
versions journaled; the next process on the same machine that opens the registry resumes them.

The engine knows jobs, not models or plugins: it reports each settled job to the observers
(:class:`UploadObserver`) installed by the layer above (``_output_model`` turns them into plugin hook calls),
so imports go one way.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from typing import Any, Protocol

import tenacity

from . import _storage
from ._errors import IntegrityError, UploadError
from ._jobs import Job, JobFile, fingerprint, journal_problem, owner_alive, owner_token
from ._registry import Registry, get_registry
from ._settings import exit_timeout, hostname, max_pending_uploads, retry_deadline, upload_workers

__all__ = ["UploadEngine", "UploadObserver", "enable_graceful_shutdown",
           "get_engine", "install_observer", "is_transient", "open_registry", "reset_engine", "sync"]


class UploadObserver(Protocol):
    """What the engine reports each settled job to (installed by the layer above with `install_observer`).

    Both methods run in an upload worker thread. An observer that raises is reported on stderr; it never
    changes the outcome of the upload.
    """

    def upload_ready(self, job: Job, uri: str, size: int, sha256: str) -> None:
        """A job's version is durable and marked ``ready`` (``uri`` differs from ``job.uri`` when deduplicated)."""

    def upload_failed(self, job: Job, error: UploadError) -> None:
        """A job's upload failed; its version is marked ``failed`` and ``error`` is what waiting raises."""


# -- retry classification -------------------------------------------------------------------------

_TRANSIENT_ERRNOS = {errno.ECONNRESET, errno.ECONNABORTED, errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EPIPE,
                     errno.EAGAIN, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN}
_TRANSIENT_TEXT = ("slowdown", "slow down", "throttl", "toomanyrequests", "too many requests", "429",
                   "500", "502", "503", "504", "internalerror", "serviceunavailable", "requesttimeout",
                   "timed out", "timeout", "connection reset", "temporarily")


def is_transient(exc: BaseException) -> bool:
    """Tell whether a storage error is worth retrying (RELIABILITY.md item 9).

    Permission errors, missing buckets or folders, a full disk and integrity failures are permanent.
    Connection resets, timeouts, 5xx and 429/SlowDown answers are transient.
    """
    if isinstance(exc, _storage.StopRequested | IntegrityError | PermissionError | FileNotFoundError
                  | IsADirectoryError | NotADirectoryError):
        return False
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
            return False
        if exc.errno in _TRANSIENT_ERRNOS:
            return True
    text = f"{type(exc).__name__} {exc}".lower()
    return any(marker in text for marker in _TRANSIENT_TEXT)


# -- the engine -------------------------------------------------------------------------------------

#: Test instrumentation: called with a phase name ("started", "streaming", "committed") and the job, so
#: that fault tests can kill a process at a named phase of an upload. ``None`` in normal use.
_phase_hook: Callable[[str, Job], None] | None = None


def _phase(name: str, job: Job) -> None:
    if _phase_hook is not None:
        _phase_hook(name, job)


class UploadEngine:
    """A process-wide pool of non-daemon upload workers with a bounded queue."""

    def __init__(self, observers: tuple[UploadObserver, ...] = ()) -> None:
        self.owner = owner_token()
        self._observers: list[UploadObserver] = list(observers)
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._futures: dict[int, tuple[Job, Future[None]]] = {}
        self._failures: list[UploadError] = []
        self._workers: list[threading.Thread] = []
        self._stop = threading.Event()
        self._slots = threading.Semaphore(max_pending_uploads())
        self._bytes_left = 0
        self._resumed: set[str] = set()
        self._exit_hook_registered = False

    def add_observer(self, observer: UploadObserver) -> None:
        """Report every job this engine settles to ``observer`` too."""
        with self._lock:
            if observer not in self._observers:
                self._observers.append(observer)

    # -- submission ---------------------------------------------------------------------------------

    def submit(self, job: Job) -> Future[None]:
        """Queue a journaled job; block only while the queue is full (backpressure, never a drop)."""
        self._slots.acquire()
        future: Future[None] = Future()
        with self._lock:
            self._futures[job.version_id] = (job, future)
            self._bytes_left += job.total_size
            self._ensure_workers()
        self._queue.put(job)
        return future

    def start(self) -> None:
        """Start the workers and register the exit drain now, instead of at the first submitted job.

        For code that submits work during interpreter shutdown (a recorder's exit drain): Python refuses to
        register a pre-join exit hook once shutdown has begun, so the engine's must be registered earlier.
        """
        with self._lock:
            self._ensure_workers()

    def _ensure_workers(self) -> None:
        if not self._exit_hook_registered:
            register = getattr(threading, "_register_atexit", None)
            # threading._register_atexit runs before non-daemon threads are joined at shutdown, which is
            # what lets the drain stop our workers; atexit would run only after that join and hang.
            if register is not None:
                register(self._at_exit)
            else:  # pragma: no cover - every supported CPython has it
                import atexit

                atexit.register(self._at_exit)
            self._exit_hook_registered = True
        alive = [t for t in self._workers if t.is_alive()]
        for i in range(len(alive), upload_workers()):
            thread = threading.Thread(target=self._work, name=f"modelyard-upload-{i}", daemon=False)
            thread.start()
            alive.append(thread)
        self._workers = alive

    # -- waiting ------------------------------------------------------------------------------------

    def pending(self, model_id: str | None = None) -> list[tuple[Job, Future[None]]]:
        """Return unfinished jobs in submission order, optionally for one model."""
        with self._lock:
            items = list(self._futures.values())
        return [(j, f) for j, f in items if not f.done() and (model_id is None or j.model_id == model_id)]

    def wait(self, timeout: float | None = None, max_num_uploads: int | None = None,
             model_id: str | None = None) -> bool:
        """Wait for pending uploads; raise `UploadError` for failures not reported before.

        Returns:
            ``True`` when every upload waited for finished, ``False`` when the timeout passed first.
        """
        items = self.pending(model_id)
        if max_num_uploads is not None:
            items = items[:max_num_uploads]
        done, not_done = wait_futures([f for _, f in items], timeout=timeout)
        self._raise_failures(model_id)
        return not not_done

    def _raise_failures(self, model_id: str | None) -> None:
        with self._lock:
            mine = [e for e in self._failures if model_id is None or e.model_id == model_id]
            self._failures = [e for e in self._failures if e not in mine]
        if not mine:
            return
        if len(mine) == 1:
            raise mine[0]
        first = mine[0]
        lines = "\n".join(f"  - {e}" for e in mine)
        raise UploadError(f"{len(mine)} uploads failed:\n{lines}", model_id=first.model_id,
                          file_name=first.file_name, version=first.version, cause=first.cause)

    # -- the workers --------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._run(job)
            finally:
                self._slots.release()

    def _run(self, job: Job) -> None:
        with self._lock:
            entry = self._futures.get(job.version_id)
        future = entry[1] if entry else Future()
        registry = get_registry(job.registry_url or None)
        if self._stop.is_set():
            future.set_exception(UploadError("stopped before it started; the version stays journaled",
                                             model_id=job.model_id, version=job.version))
            return
        try:
            if not registry.update_version(job.version_id, expect_owner=self.owner, state="uploading"):
                future.set_result(None)  # another process took it over; it is theirs to finish
                return
            self._transfer(job, registry)
        except _storage.StopRequested:
            registry.update_version(job.version_id, expect_owner=self.owner, state="pending")
            future.set_exception(UploadError("interrupted by shutdown; the version stays journaled",
                                             model_id=job.model_id, version=job.version))
        except BaseException as exc:  # noqa: BLE001 - every failure is recorded on the version and raised
            cause = f"{type(exc).__name__}: {exc}"
            if job.package:
                # Members are committed one by one: those that made it must not outlive the failed version.
                with contextlib.suppress(Exception):
                    _storage.delete_uri(job.uri)
            kept = self._settle_failure(job)
            if kept:
                cause += f" (the snapshot is kept at {kept})"
            registry.update_version(job.version_id, expect_owner=self.owner, state="failed", error=cause)
            error = UploadError(
                f"upload of model {job.model_id} version {job.version} ({job.file_name}) to {job.uri} failed: "
                f"{cause}; the source file was kept",
                model_id=job.model_id, file_name=job.file_name, version=job.version, cause=cause)
            with self._lock:
                self._failures.append(error)
            self._notify("upload_failed", job, error)
            future.set_exception(error)
        else:
            future.set_result(None)
        finally:
            with self._lock:
                self._bytes_left = max(0, self._bytes_left - job.total_size)
                self._futures.pop(job.version_id, None)

    def _transfer(self, job: Job, registry: Registry) -> None:
        _phase("started", job)
        for f in job.files:
            if f.fingerprint is not None and fingerprint(f.source) != f.fingerprint:
                raise IntegrityError(f"{f.source} changed after update_weights returned; refusing to "
                                     "upload a torn file")
        size = 0
        sha = ""
        uri = job.uri
        if job.package:
            from ._manifest import Manifest, ManifestEntry

            entries = []
            for f in job.files:
                result = self._with_retries(job, f, dedup=None)
                entries.append(ManifestEntry(f.name, result.size, result.sha256))
            manifest = Manifest(tuple(entries))
            data = manifest.to_json().encode()
            self._retrying(lambda: _storage.put_bytes(_storage.manifest_uri(job.uri), data))
            import hashlib

            size, sha = manifest.total_size, hashlib.sha256(data).hexdigest()
        else:
            (f,) = job.files

            def dedup(n: int, digest: str) -> str | None:
                row = registry.find_ready_by_hash(job.model_id, digest, n)
                return row.uri if row else None

            result = self._with_retries(job, f, dedup=dedup)
            size, sha = result.size, result.sha256
            if result.deduplicated_to:
                uri = result.deduplicated_to
        for f in job.files:
            # A source modified while we read it would give a torn object: fail loudly instead (R9).
            if f.fingerprint is not None and os.path.exists(f.source) and fingerprint(f.source) != f.fingerprint:
                if uri == job.uri:
                    _storage.delete_uri(job.uri)
                raise IntegrityError(f"{f.source} changed while it was being uploaded; the upload was "
                                     "discarded")
        _phase("committed", job)
        if not registry.update_version(job.version_id, expect_owner=self.owner, state="ready", size=size,
                                       sha256=sha, uri=uri, error=None, job=None):
            return
        self._cleanup_success(job)
        self._notify("upload_ready", job, uri, size, sha)

    def _with_retries(self, job: Job, f: JobFile, dedup: Callable[[int, str], str | None] | None
                      ) -> _storage.Transfer:
        streaming = [False]

        def progress(n: int) -> None:
            if not streaming[0]:
                streaming[0] = True
                _phase("streaming", job)
            self._progress(n)

        def attempt() -> _storage.Transfer:
            # Each attempt restarts from the snapshot and re-hashes it.
            _storage.remove_partials(f.uri)
            return _storage.upload_file(f.source, f.uri, move=job.move and not job.package, stop=self._stop,
                                        progress=progress, dedup=dedup)

        return self._retrying(attempt)

    def _retrying(self, fn: Callable[[], Any]) -> Any:
        retryer = tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_transient),
            wait=tenacity.wait_random_exponential(multiplier=0.2, max=10.0),
            stop=tenacity.stop_after_delay(retry_deadline()),
            reraise=True,
        )
        return retryer(fn)

    def _progress(self, n: int) -> None:
        with self._lock:
            self._bytes_left = max(0, self._bytes_left - n)

    def _cleanup_success(self, job: Job) -> None:
        for f in job.delete_after:
            # Delete the caller's file only if it is still the file that was handed over: a framework may
            # already have written a new checkpoint under the same name.
            with contextlib.suppress(OSError):
                if f.fingerprint is None or fingerprint(f.source) == f.fingerprint:
                    os.unlink(f.source)
        if job.staging:
            shutil.rmtree(job.staging, ignore_errors=True)

    def _settle_failure(self, job: Job) -> str | None:
        """Drop the staging snapshot unless it holds the only copy of the caller's bytes."""
        if not job.staging:
            return None
        originals_gone = any(not os.path.exists(f.source) for f in job.delete_after)
        if originals_gone:
            return job.staging
        shutil.rmtree(job.staging, ignore_errors=True)
        return None

    def _notify(self, event: str, job: Job, *args: Any) -> None:
        with self._lock:
            observers = list(self._observers)
        for observer in observers:
            try:
                getattr(observer, event)(job, *args)
            except Exception:  # noqa: BLE001 - a notification must not turn a durable version into a failure
                import traceback

                print(f"modelyard: {type(observer).__name__}.{event} raised for model {job.model_id} version "
                      f"{job.version}:\n" + traceback.format_exc(), file=sys.stderr, flush=True)

    # -- resume -------------------------------------------------------------------------------------

    def resume(self, registry: Registry, *, force: bool = False) -> list[int]:
        """Resume or fail this machine's journaled versions whose owner process is gone.

        Returns:
            The row ids of the versions taken over: handed to the workers again, or failed at once because
            their source is gone or their journal entry is unreadable.
        """
        if registry.url in self._resumed and not force:
            return []
        self._resumed.add(registry.url)
        resumed = []
        destinations = registry.destinations()
        for row in registry.active_versions(hostname()):
            if row.owner == self.owner or owner_alive(row.owner):
                continue
            if not registry.claim_version(row.id, row.owner, self.owner):
                continue  # another process claimed it first
            try:
                job = Job.from_journal(row.job) if row.job else None
                refused = None if job is None else journal_problem(job, row, destinations)
            except (TypeError, ValueError, KeyError, AttributeError):
                job, refused = None, None
            missing = None if job is None or refused else next(
                (f.source for f in job.files if not os.path.exists(f.source)), None)
            if job is None or refused or missing:
                cause = "the process that started this upload died and " + (
                    f"its journal entry was refused: it {refused}" if refused
                    else f"its source {missing} is gone" if missing else "left no journal entry")
                registry.update_version(row.id, expect_owner=self.owner, state="failed", error=cause)
                resumed.append(row.id)
                continue
            job.registry_url = registry.url
            job.version_id = row.id
            job.context = row  # what observers describe the version with: the row as journaled
            for f in job.files:
                _storage.remove_partials(f.uri)
            self.submit(job)
            resumed.append(row.id)
        return resumed

    # -- shutdown -----------------------------------------------------------------------------------

    def _at_exit(self) -> None:
        self.drain(exit_timeout(), announce=True)

    def drain(self, timeout: float | None, *, announce: bool = False) -> bool:
        """Wait for the queue to empty (up to ``timeout``), then stop the workers.

        Whatever is unfinished stays journaled for the next process to resume.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last = 0.0
        while True:
            items = self.pending()
            if not items:
                break
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if announce and now - last >= 1.0:
                with self._lock:
                    left = self._bytes_left
                print(f"modelyard: waiting for {len(items)} upload(s), {left / 2**20:.1f} MiB left "
                      f"(MODELYARD_EXIT_TIMEOUT bounds this wait)", file=sys.stderr, flush=True)
                last = now
            wait_futures([f for _, f in items], timeout=0.5 if deadline is None
                         else max(0.0, min(0.5, deadline - now)))
        unfinished = self.pending()
        if unfinished:
            self._stop.set()
            if announce:
                print(f"modelyard: {len(unfinished)} upload(s) left journaled; they resume the next time "
                      "modelyard opens this registry on this machine (or run `modelyard sync`)",
                      file=sys.stderr, flush=True)
        for _ in self._workers:
            self._queue.put(None)
        for thread in self._workers:
            thread.join(timeout=30)
        self._workers = []
        with self._lock:
            failures, self._failures = self._failures, []
        if announce:
            for error in failures:
                print(f"modelyard: ERROR: {error}", file=sys.stderr, flush=True)
        self._stop.clear()
        return not unfinished


_engine_lock = threading.Lock()
_engine: UploadEngine | None = None
_engine_pid = 0
_observers: list[UploadObserver] = []


def get_engine() -> UploadEngine:
    """Return this process's upload engine."""
    global _engine, _engine_pid
    with _engine_lock:
        if _engine is None or _engine_pid != os.getpid():
            _engine = UploadEngine(tuple(_observers))
            _engine_pid = os.getpid()
        return _engine


def install_observer(observer: UploadObserver) -> None:
    """Report the jobs of this process's engine, and of every engine made later, to ``observer``."""
    with _engine_lock:
        if observer not in _observers:
            _observers.append(observer)
        engine = _engine
    if engine is not None:
        engine.add_observer(observer)


def open_registry(url: str | None = None) -> Registry:
    """Return the registry handle for writing, resuming this machine's orphaned uploads on first open.

    The resume runs once per registry and engine (a set lookup afterwards), so recording a version never pays
    for it.
    """
    registry = get_registry(url)
    get_engine().resume(registry)
    return registry


def reset_engine() -> None:
    """Drain and forget the engine (tests use this between cases)."""
    global _engine
    with _engine_lock:
        engine, _engine = _engine, None
    if engine is not None:
        engine.drain(timeout=60)


def sync(registry_url: str | None = None, timeout: float | None = None) -> dict[str, int]:
    """Resume or fail every journaled upload of this machine whose process died, and wait for them.

    Args:
        registry_url: The registry to sync (default: the configured one).
        timeout: Seconds to wait for the resumed uploads (``None``: until they finish).

    Returns:
        Counts: ``resumed`` (journaled uploads taken over), ``failed`` (those that failed, including any whose
        source was already gone) and ``pending`` (still running).
    """
    registry = get_registry(registry_url)
    engine = get_engine()
    ids = engine.resume(registry, force=True)
    with contextlib.suppress(UploadError):
        engine.wait(timeout=timeout)
    states = [registry.get_version(i).state for i in ids]
    return {"resumed": len(ids), "failed": states.count("failed"),
            "pending": sum(s in ("pending", "uploading") for s in states)}


def enable_graceful_shutdown(signals: tuple[int, ...] = (signal.SIGTERM,)) -> None:
    """Make SIGTERM (or the given signals) drain uploads like a clean exit, chaining existing handlers.

    Call from the main thread. On the signal, a previous Python handler runs first; then the interpreter
    exits with status ``128 + signum`` through the normal exit path, which drains the upload queue
    (bounded by ``MODELYARD_EXIT_TIMEOUT``) and leaves unfinished versions journaled.
    """
    for signum in signals:
        previous = signal.getsignal(signum)

        def handler(num: int, frame: Any, _previous: Any = previous) -> None:
            if callable(_previous):
                _previous(num, frame)
            raise SystemExit(128 + num)

        signal.signal(signum, handler)
