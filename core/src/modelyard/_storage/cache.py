"""The shared download cache: verified copies keyed by content hash, safe for concurrent processes.

A cache entry is served only while it is the very file that was verified (RELIABILITY.md R11, R12); a
cross-process lock per entry lets two processes fetch the same model at once. Downloads themselves go
through :func:`modelyard._storage.transfer.download_verified` (looked up at call time, so tests can slow it).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

from modelyard._errors import IntegrityError, StorageError
from modelyard._files import PARTIAL_SUFFIX, atomic_path
from modelyard._manifest import Manifest
from modelyard._settings import home

from . import layout, transfer

_SHA256 = re.compile(r"[0-9a-f]{64}")

__all__ = ["cache_root", "cached_download", "check_digest", "copy_tree", "download_package", "fetch_package"]


def cache_root() -> Path:
    """Return the download cache folder (private to the user)."""
    root = home() / "cache"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return root


def check_digest(sha256: str | None) -> None:
    """Refuse a recorded sha256 that is not 64 lowercase hex digits (it becomes a cache path component).

    Raises:
        IntegrityError: The value read back from the registry is not a sha256.
    """
    if sha256 is not None and not (isinstance(sha256, str) and _SHA256.fullmatch(sha256)):
        raise IntegrityError(f"the registry records {sha256!r} as a sha256; the row may be corrupt")


def _stamp_path(dest: Path) -> Path:
    # safe_component never starts a name with a dot, so a stamp can never be some file's cache entry.
    return dest.with_name(f".{dest.name}.verified")


def _is_verified(dest: Path, size: int | None, sha256: str) -> bool:
    """Tell whether ``dest`` is still exactly the file that was verified against ``sha256``."""
    try:
        st = os.stat(dest, follow_symlinks=False)
        stamp = _stamp_path(dest).read_text(encoding="ascii")
    except (OSError, ValueError):
        return False
    return (os.path.isfile(dest) and not os.path.islink(dest) and (size is None or st.st_size == size)
            and stamp == f"{st.st_ino} {st.st_size} {st.st_mtime_ns} {sha256}")


def _stamp(dest: Path, sha256: str) -> None:
    """Record the identity of a freshly verified cache file, so a later change to it is noticed."""
    st = os.stat(dest)
    # Not durable: a stamp lost in a crash only costs one more download.
    with atomic_path(_stamp_path(dest), durable=False) as staged:
        staged.path.write_text(f"{st.st_ino} {st.st_size} {st.st_mtime_ns} {sha256}", encoding="ascii")


def _discard(dest: Path) -> None:
    for path in (_stamp_path(dest), dest):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def cached_download(uri: str, *, file_name: str, size: int | None, sha256: str | None,
                    on_first_hash: Callable[[int, str], None] | None = None) -> Path:
    """Return a verified local copy of an object from the shared download cache.

    The cache is keyed by content hash; a cross-process file lock lets two processes fetch the same model at
    once and both receive a complete file (R12). A cache entry is served only while it is the very file that
    was verified (same inode, size and modification time); one changed since, for example by a caller that
    wrote to the returned path, is discarded and downloaded again (R11).

    Args:
        uri: The object (already checked to lie inside the registry's destinations).
        file_name: The name the cached file gets (made a safe path component).
        size: The recorded size, or ``None``.
        sha256: The recorded sha256, or ``None`` for a registered URI never downloaded before.
        on_first_hash: With ``sha256=None``, called with the size and sha256 of the downloaded bytes before
            they enter the cache, to record them (trust on first use); it raises to refuse them.

    Raises:
        IntegrityError: The object does not match the recorded size or sha256, or the recorded sha256 is
            not one.
        StorageError: The object cannot be read, or the disk is full.
    """
    check_digest(sha256)
    name = layout.safe_component(file_name, limit=200)
    if sha256 is None:
        return _first_download(uri, name, size, on_first_hash)
    return _install_in_cache(uri, name, size, sha256,
                             lambda dest: transfer.download_verified(uri, dest, size=size, sha256=sha256))


def _install_in_cache(uri: str, name: str, size: int | None, sha256: str, fill: Callable[[Path], Any]) -> Path:
    """Under the entry's cross-process lock, keep a verified entry or replace it with what ``fill`` writes."""
    folder = cache_root() / sha256[:2] / sha256
    dest = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if not _is_verified(dest, size, sha256):
            _discard(dest)
            fill(dest)
            _stamp_or_discard(uri, dest, sha256)
    return dest


def _first_download(uri: str, name: str, size: int | None,
                    on_first_hash: Callable[[int, str], None] | None) -> Path:
    """Download an object with no recorded sha256, let the caller record it, then cache it under its hash."""
    scratch = Path(tempfile.mkdtemp(dir=cache_root(), prefix=".first-", suffix=PARTIAL_SUFFIX))
    try:
        got_size, got_sha = transfer.download_verified(uri, scratch / name, size=size, sha256=None)
        if on_first_hash is not None:
            on_first_hash(got_size, got_sha)
        return _install_in_cache(uri, name, got_size, got_sha, lambda target: os.replace(scratch / name, target))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _stamp_or_discard(uri: str, dest: Path, sha256: str) -> None:
    try:
        _stamp(dest, sha256)
    except OSError as e:
        _discard(dest)
        raise StorageError(f"cannot record the verified download of {uri} in {dest.parent}: {e}") from e


def copy_tree(src: Path, dest: Path) -> None:
    """Copy a verified cache folder into a fresh folder for the caller."""
    shutil.copytree(src, dest, symlinks=False)


# -- snapshots ---------------------------------------------------------------------------------------


# -- folder packages ---------------------------------------------------------------------------------


def download_package(uri: str, manifest_sha: str | None, scratch: Path,
                     progress: Callable[[int], Callable[[int], None] | None] | None = None) -> tuple[Path, Manifest]:
    """Download a folder package into ``scratch/package``, verifying the manifest and then every member.

    The manifest must match the sha256 the registry recorded; each member must match the manifest. The
    caller renames the finished folder into place, so nothing partial is ever visible.

    Args:
        uri: The package's URI (already checked to lie inside the registry's destinations).
        manifest_sha: The manifest's recorded sha256.
        scratch: A fresh private folder the caller removes afterwards.
        progress: Called once with the package's total size; returns the per-chunk callback (or ``None``).

    Returns:
        The folder holding the package's files, and its manifest.

    Raises:
        IntegrityError: No sha256 is recorded for the manifest, or a byte does not verify.
        ArchiveError: The manifest is invalid.
        StorageError: An object cannot be read.
    """
    if manifest_sha is None:
        # Packages become ready only with their manifest's sha256: without it nothing could be verified.
        raise IntegrityError(f"no sha256 is recorded for the manifest of the package at {uri}; the registry "
                             "row may be corrupt")
    manifest_path = scratch / layout.MANIFEST_NAME
    transfer.download_verified(layout.manifest_uri(uri), manifest_path, size=None, sha256=manifest_sha)
    manifest = Manifest.from_json(manifest_path.read_bytes())
    folder = scratch / "package"
    folder.mkdir()
    advance = progress(manifest.total_size) if progress is not None else None
    for entry in manifest.entries:
        transfer.download_verified(layout.member_uri(uri, entry.path), folder.joinpath(*entry.path.split("/")),
                                   size=entry.size, sha256=entry.sha256, progress=advance)
    return folder, manifest


def fetch_package(uri: str, manifest_sha: str | None) -> Path:
    """Return a verified copy of a folder package from the download cache, downloading it if needed."""
    if manifest_sha is None:
        raise IntegrityError(f"no sha256 is recorded for the manifest of the package at {uri}; the registry "
                             "row may be corrupt")
    check_digest(manifest_sha)
    folder = cache_root() / manifest_sha[:2] / manifest_sha
    done = folder / "package"
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if done.is_dir():
            return done
        # Manifest and members go to a scratch folder; only a complete, verified package is moved into place.
        scratch = Path(tempfile.mkdtemp(dir=folder, prefix=".partial-"))
        try:
            staging, _ = download_package(uri, manifest_sha, scratch)
            os.replace(staging, done)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return done
