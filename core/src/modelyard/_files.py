"""Local file durability and hashing: the one atomic-write helper and the one chunked sha256 loop.

A bottom-layer module (beside :mod:`modelyard._errors` and :mod:`modelyard._settings`): it imports only the
standard library, so storage, packages, weights and the audit all write and hash files the same way.

An atomic write goes to a fresh temporary name beside the target, is fsynced, renamed over the target, and
the folder is fsynced so the rename itself survives a crash; on any error the temporary file is removed and
the target is untouched (RELIABILITY.md invariants 4 and 8).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CHUNK", "PARTIAL_SUFFIX", "StrPath", "Staged", "atomic_path", "copy_hashing", "fsync_dir",
           "fsync_file", "sha256_file", "write_bytes_atomic"]

#: A path as the public API accepts it.
StrPath = str | os.PathLike[str]

#: Bytes read per step when streaming: large enough for throughput, small enough to bound memory (R8).
CHUNK = 8 * 1024 * 1024

#: Every temporary file modelyard writes ends with this, so clean-up code can recognise its own leftovers.
PARTIAL_SUFFIX = ".modelyard-partial"

# Filesystems that cannot fsync a folder answer with these; the rename is still atomic there.
_NO_DIR_FSYNC = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF, errno.EACCES, errno.EPERM}


def fsync_file(path: StrPath) -> None:
    """Flush a file's bytes to disk."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: StrPath) -> None:
    """Make renames and creates in ``folder`` durable (a no-op where folders cannot be fsynced).

    Raises:
        OSError: fsync failed for a reason other than the filesystem not supporting it (e.g. an I/O error).
    """
    if os.name != "posix":
        return  # directories cannot be opened for fsync on Windows
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as e:
        if e.errno in _NO_DIR_FSYNC:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in _NO_DIR_FSYNC:
            raise
    finally:
        os.close(fd)


@dataclass
class Staged:
    """The temporary file of an :func:`atomic_path` block.

    Attributes:
        path: The temporary path beside the target; it does not exist until the block creates it.
        committed: Whether the block's end renames it over the target; :meth:`discard` clears it.
    """

    path: Path
    committed: bool = True

    def discard(self) -> None:
        """Leave the target untouched: the temporary file is removed when the block ends."""
        self.committed = False


def temporary_name(target: Path) -> Path:
    """Return a fresh, hidden name beside ``target`` that modelyard recognises as its own leftover."""
    return target.with_name(f".{target.name[:200]}.{uuid.uuid4().hex[:12]}{PARTIAL_SUFFIX}")


@contextlib.contextmanager
def atomic_path(target: StrPath, *, durable: bool = True) -> Iterator[Staged]:
    """Write a file atomically: the block creates ``staged.path``, which then replaces ``target``.

    The block must create the temporary file itself (``open(staged.path, "xb")``, ``os.link``, a library's
    ``save_file``). When it ends without an error the file is fsynced, renamed over ``target`` and the
    folder fsynced; when it raises, or calls :meth:`Staged.discard`, the temporary file is removed and
    ``target`` is left as it was.

    Args:
        target: The file to create or replace. Its folder must exist.
        durable: fsync the file and the folder (off only for files that are cheap to lose, such as caches'
            bookkeeping).

    Yields:
        The staged temporary file.
    """
    target = Path(target)
    staged = Staged(temporary_name(target))
    try:
        yield staged
        if staged.committed:
            if durable:
                fsync_file(staged.path)
            os.replace(staged.path, target)
    finally:
        # Also after a successful rename: rename() between two links of one inode does nothing (POSIX), so
        # a hardlinked temporary name would otherwise stay.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged.path)
    if staged.committed and durable:
        fsync_dir(target.parent)


def write_bytes_atomic(target: StrPath, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically and durably (see :func:`atomic_path`)."""
    with atomic_path(target) as staged, open(staged.path, "xb") as f:
        f.write(data)


def copy_hashing(src: Any, write: Callable[[memoryview], object] | None = None, *,
                 check: Callable[[int], None] | None = None, progress: Callable[[int], None] | None = None,
                 chunk_size: int = CHUNK) -> tuple[int, str]:
    """Stream a binary file object in bounded chunks, hashing it (sha256) and optionally copying it.

    Memory stays at one chunk whatever the size (R8): one buffer is reused for every read.

    Args:
        src: A binary file object (a local file or an fsspec file) positioned where hashing starts.
        write: Called with each chunk, e.g. the destination's ``write``. The view is only valid during the
            call (the buffer is reused): copy it (``bytes(view)``) to keep it.
        check: Called with the running byte count after each read, before the chunk is hashed or written;
            it raises to stop (a shutdown, a size limit).
        progress: Called with the number of bytes just processed.
        chunk_size: Bytes per read.

    Returns:
        The number of bytes read and their sha256 as 64 lowercase hex digits.
    """
    digest = hashlib.sha256()
    size = 0
    buf = bytearray(chunk_size)
    view = memoryview(buf)
    readinto = getattr(src, "readinto", None)
    while True:
        if readinto is not None:
            n = readinto(buf) or 0
            data = view[:n]
        else:
            chunk = src.read(chunk_size)
            n = len(chunk)
            data = memoryview(chunk)
        if not n:
            break
        size += n
        if check is not None:
            check(size)
        digest.update(data)
        if write is not None:
            write(data)
        if progress is not None:
            progress(n)
    return size, digest.hexdigest()


def sha256_file(path: StrPath, *, check: Callable[[int], None] | None = None,
                progress: Callable[[int], None] | None = None) -> tuple[int, str]:
    """Return the size and sha256 of a local file, read in bounded chunks (see :func:`copy_hashing`)."""
    with open(path, "rb") as f:
        return copy_hashing(f, check=check, progress=progress)
