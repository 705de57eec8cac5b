"""``OrderedWorker``: one background thread that runs a caller's work in submission order.

A training loop hands its registry work here so its own thread pays only for handing it over. The rules:

- the work runs in the order it was submitted, on one thread owned by the worker;
- at most ``max_pending`` items wait: a caller submitting faster blocks (backpressure, never growing memory);
- an error of an item is kept and raised in the caller's thread by its next :meth:`~OrderedWorker.check`,
  :meth:`~OrderedWorker.submit`, :meth:`~OrderedWorker.flush` or :meth:`~OrderedWorker.close`: never
  dropped; the items after it still run (each stands on its own);
- the thread is not a daemon: a clean interpreter exit runs what was submitted, from a hook that runs before
  Python joins non-daemon threads (:func:`drain_all`, called by the recording layer's exit hook).
"""

from __future__ import annotations

import queue
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

_STOP = object()
#: Live workers, so that interpreter exit can drain them.
_workers: weakref.WeakSet[OrderedWorker] = weakref.WeakSet()
_workers_lock = threading.Lock()


class OrderedWorker:
    """Run callables in order on one non-daemon background thread, started on first use.

    Args:
        name: The thread's name.
        max_pending: How many submitted items may wait (submitting more blocks until one is done).
    """

    def __init__(self, name: str = "modelyard-recorder", max_pending: int = 8) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        self.name = name
        self._slots = threading.BoundedSemaphore(max_pending)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last: Future[Any] | None = None
        self._closed = False

    def in_worker(self) -> bool:
        """Whether the calling thread is this worker's thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Queue ``fn(*args, **kwargs)`` to run after everything submitted before it.

        From the worker's own thread (work submitting work) it runs at once, since waiting for a slot there
        could never end.

        Returns:
            The item's future (its result or error; the error is also raised by the next check).

        Raises:
            BaseException: The error of an earlier item, not raised before.
            RuntimeError: The worker was closed.
        """
        future: Future[T] = Future()
        if self.in_worker():
            self._run(fn, args, kwargs, future, release=False)
            return future
        self.check()
        self._slots.acquire()  # backpressure: blocks while max_pending items wait
        with self._lock:
            if self._closed:
                self._slots.release()
                raise RuntimeError(f"the background worker {self.name!r} was closed; nothing more runs on it")
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self.name, daemon=False)
                self._thread.start()
                with _workers_lock:
                    _workers.add(self)
            self._last = future
            self._queue.put((fn, args, kwargs, future))
        return future

    def check(self) -> None:
        """Raise the error of a finished item not raised before (cheap: for a training loop's every hook)."""
        if not self._errors:
            return
        with self._lock:
            error = self._errors.pop(0) if self._errors else None
        if error is not None:
            raise error

    def flush(self) -> None:
        """Wait until everything submitted so far ran; raise the first error not raised before."""
        if not self.in_worker():
            last = self._last
            if last is not None:
                last.exception()  # waits; its outcome is reported by check()
        self.check()

    def close(self) -> None:
        """Run what was submitted, stop the thread, and raise the first error not raised before.

        Closing twice is harmless; a closed worker refuses new work.
        """
        with self._lock:
            self._closed = True
            thread = self._thread
            if thread is not None and thread is not threading.current_thread():
                self._queue.put(_STOP)
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with _workers_lock:
            _workers.discard(self)
        self.check()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            fn, args, kwargs, future = item
            self._run(fn, args, kwargs, future, release=True)

    def _run(self, fn: Callable[..., Any], args: Any, kwargs: Any, future: Future[Any], *, release: bool) -> None:
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - kept, and raised in the caller's thread at its next call
            with self._lock:
                self._errors.append(e)
            future.set_exception(e)
        finally:
            if release:
                self._slots.release()


def drain_all() -> tuple[int, list[BaseException]]:
    """Run the work of every live worker and stop them (at interpreter exit).

    Returns:
        How many workers were live, and the errors their work left unraised.
    """
    with _workers_lock:
        workers = list(_workers)
    errors: list[BaseException] = []
    for worker in workers:
        try:
            worker.close()
        except BaseException as e:  # noqa: BLE001 - reported by the caller (at exit: printed)
            errors.append(e)
            while worker._errors:
                errors.append(worker._errors.pop(0))
    return len(workers), errors
