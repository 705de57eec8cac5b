"""Object I/O through fsspec: streaming uploads with atomic commit, verified downloads, deletes.

Local destinations commit by writing a temporary file beside the target, fsync, rename, fsync of the folder
(:func:`modelyard._files.atomic_path`). Object stores (S3, GCS, Azure) make an object visible only when its
single PUT or multipart upload completes, so they are written at the final key directly. Every byte is
hashed on the way (:func:`modelyard._files.copy_hashing`), and nothing partial is ever left at a final key.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelyard._errors import IntegrityError, StorageError
from modelyard._files import CHUNK, PARTIAL_SUFFIX, atomic_path, copy_hashing, sha256_file, write_bytes_atomic
from modelyard._settings import part_size

from . import uris

__all__ = ["CHUNK", "MAX_PARTS", "MIN_PART", "StopRequested", "Transfer", "choose_part_size", "delete_uri",
           "download_verified", "hash_object", "object_size", "put_bytes", "remove_partials", "upload_file"]

#: Object stores cap multipart uploads at 10,000 parts; stay well under it.
MAX_PARTS = 9_000
MIN_PART = 8 * 1024 * 1024


class StopRequested(Exception):
    """Raised inside a transfer when the process is shutting down; the version stays journaled."""


def _stopper(stop: threading.Event | None) -> Callable[[int], None] | None:
    if stop is None:
        return None

    def check(_size: int) -> None:
        if stop.is_set():
            raise StopRequested

    return check


def choose_part_size(size: int) -> int:
    """Return a multipart part size that keeps a ``size``-byte upload under the part-count limit."""
    fixed = part_size()
    if fixed:
        return max(fixed, math.ceil(size / MAX_PARTS))
    mib = 1024 * 1024
    return max(MIN_PART, math.ceil(size / MAX_PARTS / mib) * mib)


# -- upload ------------------------------------------------------------------------------------------


@dataclass
class Transfer:
    """What one finished upload wrote."""

    size: int
    sha256: str
    deduplicated_to: str | None = None


def upload_file(src: str, uri: str, *, move: bool = False, stop: threading.Event | None = None,
                progress: Callable[[int], None] | None = None,
                dedup: Callable[[int, str], str | None] | None = None) -> Transfer:
    """Stream a local file to ``uri`` while hashing it, and commit it atomically.

    Args:
        src: The local file to read (a snapshot the caller owns).
        uri: The final object URI.
        move: The source is ours to consume; on the same local filesystem it is renamed, not copied.
        stop: Set when the process shuts down; the transfer then aborts, leaving nothing at ``uri``.
        progress: Called with the number of bytes just transferred.
        dedup: Called with (size, sha256) before the commit; returning a URI means identical bytes are
            already stored there, and nothing is committed.

    Returns:
        The size and sha256 of the committed bytes.
    """
    protocol, path = uris.split_uri(uri)
    if uris.is_local(protocol):
        return _upload_local(src, path, move=move, stop=stop, progress=progress, dedup=dedup)
    return _upload_remote(protocol, src, path, stop=stop, progress=progress, dedup=dedup)


def _upload_local(src: str, path: str, *, move: bool, stop: threading.Event | None,
                  progress: Callable[[int], None] | None,
                  dedup: Callable[[int, str], str | None] | None) -> Transfer:
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    with atomic_path(path) as staged:
        if move and _same_device(src, folder):
            # The bytes are ours and already on this filesystem: hash them, then rename instead of copying.
            os.link(src, staged.path)
            size, sha = sha256_file(staged.path, check=_stopper(stop), progress=progress)
        else:
            with open(src, "rb") as fin, open(staged.path, "xb") as fout:
                size, sha = copy_hashing(fin, fout.write, check=_stopper(stop), progress=progress)
        if dedup is not None and (existing := dedup(size, sha)):
            staged.discard()
            return Transfer(size, sha, deduplicated_to=existing)
    return Transfer(size, sha)


def _same_device(src: str, folder: str) -> bool:
    try:
        return os.stat(src).st_dev == os.stat(folder).st_dev
    except OSError:
        return False


def _upload_remote(protocol: str, src: str, path: str, *, stop: threading.Event | None,
                   progress: Callable[[int], None] | None,
                   dedup: Callable[[int, str], str | None] | None) -> Transfer:
    fs = uris.filesystem(protocol)
    expected_size = os.path.getsize(src)
    if dedup is not None:
        # A network upload costs more than a local read: hash first so identical bytes are never sent.
        size, sha = sha256_file(src, check=_stopper(stop))
        if existing := dedup(size, sha):
            return Transfer(size, sha, deduplicated_to=existing)
    f = fs.open(path, "wb", block_size=choose_part_size(expected_size))
    try:
        with open(src, "rb") as fin:
            # bytes(): the chunk's buffer is reused, and a store may keep what it is given until the part fills.
            size, sha = copy_hashing(fin, lambda chunk: f.write(bytes(chunk)), check=_stopper(stop),
                                     progress=progress)
    except BaseException:
        # Abandon the object: a multipart upload that never completes leaves nothing at the key.
        discard = getattr(f, "discard", None)
        with contextlib.suppress(Exception):
            if callable(discard):
                discard()
            else:
                f.closed = True
        raise
    f.close()
    info = fs.info(path)
    if int(info.get("size", -1)) != size:
        raise IntegrityError(f"stored object {uris.join_uri(protocol, path)} has size {info.get('size')} "
                             f"after writing {size} bytes")
    return Transfer(size, sha)


def put_bytes(uri: str, data: bytes) -> None:
    """Write a small object atomically (used for package manifests)."""
    protocol, path = uris.split_uri(uri)
    if uris.is_local(protocol):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_bytes_atomic(path, data)
        return
    with uris.filesystem(protocol).open(path, "wb") as f:
        f.write(data)


# -- delete and inspect ------------------------------------------------------------------------------


def delete_uri(uri: str) -> None:
    """Delete one object, or a package folder with everything below it; a missing object is not an error."""
    protocol, path = uris.split_uri(uri)
    fs = uris.filesystem(protocol)
    try:
        if fs.isdir(path):
            fs.rm(path, recursive=True)
        else:
            fs.rm(path)
    except FileNotFoundError:
        return
    if uris.is_local(protocol):
        # Local folders, unlike object-store prefixes, outlive their last object: drop the version folder
        # once empty (rmdir refuses one that still holds anything). Never the model folder: a concurrent
        # upload of another version may be about to write into it.
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(path))


def remove_partials(uri: str) -> None:
    """Remove temporary files a killed process left beside a local object."""
    protocol, path = uris.split_uri(uri)
    if not uris.is_local(protocol):
        return
    folder = os.path.dirname(path)
    prefix = f".{os.path.basename(path)[:200]}."
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix) and name.endswith(PARTIAL_SUFFIX):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))


def object_size(uri: str) -> int | None:
    """Return an object's size, or ``None`` when it does not exist."""
    protocol, path = uris.split_uri(uri)
    try:
        return int(uris.filesystem(protocol).info(path)["size"])
    except FileNotFoundError:
        return None


def hash_object(uri: str, progress: Callable[[int], None] | None = None, limit: int | None = None
                ) -> tuple[int, str, bytes | None] | None:
    """Stream an object and return its size and sha256 (and its bytes when ``limit`` is given).

    Returns:
        ``None`` when the object does not exist.

    Raises:
        StorageError: The object exceeds ``limit`` bytes.
        OSError: The object cannot be read.
    """
    protocol, path = uris.split_uri(uri)
    try:
        f = uris.filesystem(protocol).open(path, "rb")
    except FileNotFoundError:
        return None
    kept: list[bytes] = []

    def check(size: int) -> None:
        if limit is not None and size > limit:
            raise StorageError(f"{uri} is larger than {limit} bytes")

    with f:
        size, sha = copy_hashing(f, (lambda chunk: kept.append(bytes(chunk))) if limit is not None else None,
                                 check=check, progress=progress)
    return size, sha, (b"".join(kept) if limit is not None else None)


# -- download ----------------------------------------------------------------------------------------


def download_verified(uri: str, dest: Path, *, size: int | None, sha256: str | None,
                      progress: Callable[[int], None] | None = None) -> tuple[int, str]:
    """Download ``uri`` to ``dest`` through a temporary file, verifying size and sha256 first.

    Nothing is left at ``dest`` unless the bytes verify.

    Raises:
        IntegrityError: The object's size or sha256 differs from the recorded values.
        StorageError: The object cannot be read.
    """
    protocol, path = uris.split_uri(uri)
    fs = uris.filesystem(protocol)

    def check(count: int) -> None:
        if size is not None and count > size:
            raise IntegrityError(f"stored object {uri} is larger than the {size} bytes recorded")

    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(dest) as staged:
            try:
                src = fs.open(path, "rb")
            except FileNotFoundError as e:
                raise StorageError(f"stored object {uri} is missing") from e
            with src, open(staged.path, "xb") as out:
                count, actual = copy_hashing(src, out.write, check=check, progress=progress)
            if size is not None and count != size:
                raise IntegrityError(f"stored object {uri} has {count} bytes, {size} were recorded")
            if sha256 is not None and actual != sha256:
                raise IntegrityError(f"stored object {uri} has sha256 {actual}, {sha256} was recorded; "
                                     "the object was changed or substituted after upload")
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise StorageError(f"no space left while downloading {uri} into {dest.parent}") from e
        raise StorageError(f"cannot download {uri}: {e}") from e
    return count, actual
