"""Destinations, object keys, fsspec I/O, atomic commits, hashing and the download cache.

Local destinations commit by writing a temporary file beside the target, fsync, rename, fsync of the folder.
Object stores (S3, GCS, Azure) make an object visible only when its single PUT or multipart upload completes,
so they are written at the final key directly. Every URI read back from the registry is checked against the
destinations this registry wrote to before any read or delete (RELIABILITY.md S9).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import math
import os
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
from filelock import FileLock

from ._errors import DestinationError, IntegrityError, MissingDependencyError, StorageError
from ._settings import home, part_size

CHUNK = 8 * 1024 * 1024
#: Object stores cap multipart uploads at 10,000 parts; stay well under it.
MAX_PARTS = 9_000
MIN_PART = 8 * 1024 * 1024

#: The fsspec protocol behind each URI scheme users write.
_SCHEME_ALIASES = {"azure": "az", "abfs": "abfs", "az": "az", "gs": "gs", "gcs": "gs", "s3": "s3", "s3a": "s3"}
#: The package to install for each scheme that needs one.
_INSTALL_HINTS = {"s3": "modelyard[s3]", "gs": "modelyard[gcs]", "az": "modelyard[azure]", "abfs": "modelyard[azure]"}
_PARTIAL_MARK = ".modelyard-partial"


class StopRequested(Exception):
    """Raised inside a transfer when the process is shutting down; the version stays journaled."""


# -- URIs --------------------------------------------------------------------------------------------


def split_uri(uri: str) -> tuple[str, str]:
    """Split a URI (or a local path) into an fsspec protocol and path.

    Raises:
        DestinationError: The URI has a scheme but no path.
    """
    if "://" not in uri:
        return "file", os.path.abspath(os.path.expanduser(uri))
    scheme, rest = uri.split("://", 1)
    scheme = scheme.lower()
    if scheme == "file":
        return "file", os.path.abspath(rest) if rest else ""
    protocol = _SCHEME_ALIASES.get(scheme, scheme)
    if not rest:
        raise DestinationError(f"destination {uri!r} has no bucket or path")
    return protocol, rest


def join_uri(protocol: str, path: str) -> str:
    """Build the canonical URI for an fsspec protocol and path."""
    if protocol == "file":
        return "file://" + path
    scheme = {"az": "azure"}.get(protocol, protocol)
    return f"{scheme}://{path}"


def normalize_destination(uri: str) -> str:
    """Return the canonical form of a destination root: absolute, with a scheme, no trailing slash."""
    if not isinstance(uri, str) or not uri.strip():
        raise DestinationError(f"a destination must be a non-empty string, got {uri!r}")
    if "\x00" in uri:
        raise DestinationError("a destination must not contain NUL characters")
    protocol, path = split_uri(uri.strip())
    path = path.rstrip("/") or "/"
    return join_uri(protocol, path)


def filesystem(protocol: str) -> fsspec.AbstractFileSystem:
    """Return the fsspec filesystem for a protocol.

    Raises:
        MissingDependencyError: The protocol's implementation is not installed (names the package).
        DestinationError: No fsspec implementation knows the protocol.
    """
    try:
        return fsspec.filesystem(protocol)
    except ImportError as e:
        hint = _INSTALL_HINTS.get(protocol)
        extra = f" Install it with `pip install '{hint}'`." if hint else ""
        raise MissingDependencyError(f"storage scheme {protocol!r} needs a package that is not installed: "
                                     f"{e}.{extra}") from e
    except ValueError as e:
        raise DestinationError(f"no fsspec implementation for the storage scheme {protocol!r}: {e}") from e


def is_local(protocol: str) -> bool:
    """Tell whether a protocol is the local filesystem."""
    return protocol in ("file", "local")


_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_.\-]+")


def safe_component(text: str, *, limit: int = 80) -> str:
    """Turn any string into one safe, readable path component.

    Characters outside ``[A-Za-z0-9_.-]`` become ``_``, leading dots are dropped (no ``.``/``..``/hidden
    names), and a short hash of the original is appended whenever anything changed, so two different names
    never share a key.
    """
    slug = _UNSAFE_CHARS.sub("_", text).lstrip(".")[:limit] or "_"
    if slug != text:
        slug = f"{slug}-{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
    return slug


def object_uri(destination: str, *, project: str, task_name: str, task_id: str, model_id: str,
               version: int, file_name: str) -> str:
    """Return ``<dest>/<project>/<task name>.<task id>/models/<model id>/<version>/<file name>``."""
    parts = [safe_component(project), f"{safe_component(task_name)}.{safe_component(task_id)}", "models",
             safe_component(model_id), str(int(version)), safe_component(file_name, limit=200)]
    return destination.rstrip("/") + "/" + "/".join(parts)


def package_key(relative_path: str) -> str:
    """Return the storage key of a package member below the package folder (each component made safe)."""
    return "/".join(safe_component(part, limit=200) for part in relative_path.split("/"))


_FORBIDDEN_IN_STORED = re.compile(r"[?#;%\\\x00-\x1f\x7f]")


def check_confined(uri: str, allowed: Iterable[str]) -> None:
    """Refuse a stored URI unless it lies inside a destination this registry wrote to (S9).

    The URI is normalised once and never decoded: it must already be in the canonical form modelyard writes
    (a scheme, an absolute path, no trailing slash), and below the destination query strings, fragments,
    ``;`` parameters, ``%`` escapes, backslashes, control characters and empty, ``.`` or ``..`` segments are
    refused. Destination roots are compared in canonical form too, so a root recorded with a trailing slash
    or as a plain path neither widens nor breaks the check. On the local filesystem the resolved path must
    stay below the resolved root, so a symlink planted inside a destination cannot lead outside it.

    Raises:
        DestinationError: The URI is outside every allowed destination or uses a refused construct.
    """
    if not isinstance(uri, str) or not uri:
        raise DestinationError(f"stored URI {uri!r} is not a string; the registry row may be corrupt")
    try:
        canonical = normalize_destination(uri) if "://" in uri else None
    except DestinationError:
        canonical = None
    if canonical != uri:
        raise DestinationError(f"stored URI {uri!r} is not in the canonical form modelyard writes; refusing "
                               "to read it (was the registry row changed by hand?)")
    for recorded in allowed:
        try:
            root = normalize_destination(recorded)
        except DestinationError:
            continue  # a malformed destination row confines nothing
        if uri == root:
            return
        prefix = root if root.endswith("/") else root + "/"
        if not uri.startswith(prefix):
            continue
        rest = uri[len(prefix):]
        if _FORBIDDEN_IN_STORED.search(rest) or any(s in ("", ".", "..") for s in rest.split("/")):
            raise DestinationError(
                f"stored URI {uri!r} uses a refused construct below {root!r}; refusing to read it")
        protocol, path = split_uri(uri)
        if is_local(protocol):
            real_root = os.path.realpath(split_uri(root)[1])
            if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
                raise DestinationError(f"stored URI {uri!r} resolves outside {root!r} through a symlink; "
                                       "refusing to read it")
        return
    raise DestinationError(
        f"stored URI {uri!r} is outside every destination this registry wrote to; refusing to read it "
        "(was the registry row changed by hand?)")


#: A key below a destination in modelyard's own layout: project / task / "models" / model id / version / file.
OWNED_KEY = re.compile(r"^[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+/models/(?P<model>[A-Za-z0-9_.\-]+)/[0-9]+/.+$")


def owning_model(uri: str, allowed: Iterable[str]) -> str | None:
    """Return the id of the model whose folder holds ``uri`` in modelyard's layout, or ``None``.

    Only such objects are modelyard's to delete; a registered URI (or a row changed to point at a
    destination's root or at another model's folder) is not.
    """
    for recorded in allowed:
        try:
            root = normalize_destination(recorded)
        except DestinationError:
            continue
        prefix = root if root.endswith("/") else root + "/"
        if uri.startswith(prefix) and (match := OWNED_KEY.match(uri[len(prefix):])):
            return match["model"]
    return None


def is_writable(destination: str) -> bool:
    """Tell whether a destination's scheme is installed and a small probe object can be written there."""
    try:
        protocol, path = split_uri(destination)
        fs = filesystem(protocol)
        probe = f"{path.rstrip('/')}/.modelyard-probe-{uuid.uuid4().hex}"
        if is_local(protocol):
            os.makedirs(path, exist_ok=True)
        with fs.open(probe, "wb") as f:
            f.write(b"ok")
        fs.rm(probe)
        return True
    except Exception:  # noqa: BLE001 - the documented contract is a boolean answer, not an error
        return False


# -- hashing -----------------------------------------------------------------------------------------


def sha256_file(path: str | os.PathLike[str], stop: threading.Event | None = None) -> tuple[int, str]:
    """Return the size and sha256 of a local file, read in bounded chunks."""
    digest = hashlib.sha256()
    size = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb") as f:
        while n := f.readinto(buf):
            if stop is not None and stop.is_set():
                raise StopRequested
            digest.update(view[:n])
            size += n
    return size, digest.hexdigest()


def choose_part_size(size: int) -> int:
    """Return a multipart part size that keeps a ``size``-byte upload under the part-count limit."""
    fixed = part_size()
    if fixed:
        return max(fixed, math.ceil(size / MAX_PARTS))
    mib = 1024 * 1024
    return max(MIN_PART, math.ceil(size / MAX_PARTS / mib) * mib)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on folders; the rename itself is still atomic
    finally:
        os.close(fd)


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
    protocol, path = split_uri(uri)
    if is_local(protocol):
        return _upload_local(src, path, move=move, stop=stop, progress=progress, dedup=dedup)
    return _upload_remote(protocol, src, path, stop=stop, progress=progress, dedup=dedup)


def _upload_local(src: str, path: str, *, move: bool, stop: threading.Event | None,
                  progress: Callable[[int], None] | None,
                  dedup: Callable[[int, str], str | None] | None) -> Transfer:
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}{_PARTIAL_MARK}")
    digest = hashlib.sha256()
    size = 0
    try:
        if move and _same_device(src, folder):
            # The bytes are ours and already on this filesystem: hash them, then rename instead of copying.
            os.link(src, tmp)
            with open(tmp, "rb+") as f:
                buf = bytearray(CHUNK)
                view = memoryview(buf)
                while n := f.readinto(buf):
                    if stop is not None and stop.is_set():
                        raise StopRequested
                    digest.update(view[:n])
                    size += n
                    if progress:
                        progress(n)
                os.fsync(f.fileno())
        else:
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            with open(src, "rb") as fin, open(tmp, "xb") as fout:
                while n := fin.readinto(buf):
                    if stop is not None and stop.is_set():
                        raise StopRequested
                    digest.update(view[:n])
                    fout.write(view[:n])
                    size += n
                    if progress:
                        progress(n)
                fout.flush()
                os.fsync(fout.fileno())
        sha = digest.hexdigest()
        if dedup is not None and (existing := dedup(size, sha)):
            os.unlink(tmp)
            return Transfer(size, sha, deduplicated_to=existing)
        os.replace(tmp, path)
        # rename() between two links of one inode does nothing (POSIX): a resumed move finds its object
        # already linked at the key, so drop the temporary name explicitly.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _fsync_dir(folder)
        return Transfer(size, sha)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _same_device(src: str, folder: str) -> bool:
    try:
        return os.stat(src).st_dev == os.stat(folder).st_dev
    except OSError:
        return False


def _upload_remote(protocol: str, src: str, path: str, *, stop: threading.Event | None,
                   progress: Callable[[int], None] | None,
                   dedup: Callable[[int, str], str | None] | None) -> Transfer:
    fs = filesystem(protocol)
    expected_size = os.path.getsize(src)
    if dedup is not None:
        # A network upload costs more than a local read: hash first so identical bytes are never sent.
        size, sha = sha256_file(src, stop)
        if existing := dedup(size, sha):
            return Transfer(size, sha, deduplicated_to=existing)
    digest = hashlib.sha256()
    size = 0
    block = choose_part_size(expected_size)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    f = fs.open(path, "wb", block_size=block)
    try:
        with open(src, "rb") as fin:
            while n := fin.readinto(buf):
                if stop is not None and stop.is_set():
                    raise StopRequested
                digest.update(view[:n])
                f.write(bytes(view[:n]))
                size += n
                if progress:
                    progress(n)
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
    sha = digest.hexdigest()
    info = fs.info(path)
    if int(info.get("size", -1)) != size:
        raise IntegrityError(f"stored object {join_uri(protocol, path)} has size {info.get('size')} "
                             f"after writing {size} bytes")
    return Transfer(size, sha)


def delete_uri(uri: str) -> None:
    """Delete one object, or a package folder with everything below it; a missing object is not an error."""
    protocol, path = split_uri(uri)
    fs = filesystem(protocol)
    try:
        if fs.isdir(path):
            fs.rm(path, recursive=True)
        else:
            fs.rm(path)
    except FileNotFoundError:
        return
    if is_local(protocol):
        # Local folders, unlike object-store prefixes, outlive their last object: drop the version folder
        # once empty (rmdir refuses one that still holds anything). Never the model folder: a concurrent
        # upload of another version may be about to write into it.
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(path))


def remove_partials(uri: str) -> None:
    """Remove temporary files a killed process left beside a local object."""
    protocol, path = split_uri(uri)
    if not is_local(protocol):
        return
    folder = os.path.dirname(path)
    prefix = f".{os.path.basename(path)}."
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix) and name.endswith(_PARTIAL_MARK):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))


def put_bytes(uri: str, data: bytes) -> None:
    """Write a small object atomically (used for package manifests)."""
    protocol, path = split_uri(uri)
    if is_local(protocol):
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}{_PARTIAL_MARK}")
        try:
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(folder)
        return
    fs = filesystem(protocol)
    with fs.open(path, "wb") as f:
        f.write(data)


def object_exists(uri: str) -> bool:
    """Tell whether an object exists."""
    protocol, path = split_uri(uri)
    return bool(filesystem(protocol).exists(path))


def object_size(uri: str) -> int | None:
    """Return an object's size, or ``None`` when it does not exist."""
    protocol, path = split_uri(uri)
    try:
        return int(filesystem(protocol).info(path)["size"])
    except FileNotFoundError:
        return None


# -- download ----------------------------------------------------------------------------------------


def cache_root() -> Path:
    """Return the download cache folder (private to the user)."""
    root = home() / "cache"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return root


def download_verified(uri: str, dest: Path, *, size: int | None, sha256: str | None,
                      progress: Callable[[int], None] | None = None) -> tuple[int, str]:
    """Download ``uri`` to ``dest`` through a temporary file, verifying size and sha256 first.

    Nothing is left at ``dest`` unless the bytes verify.

    Raises:
        IntegrityError: The object's size or sha256 differs from the recorded values.
        StorageError: The object cannot be read.
    """
    protocol, path = split_uri(uri)
    fs = filesystem(protocol)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=_PARTIAL_MARK)
    digest = hashlib.sha256()
    count = 0
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                src = fs.open(path, "rb")
            except FileNotFoundError as e:
                raise StorageError(f"stored object {uri} is missing") from e
            with src:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    count += len(chunk)
                    if size is not None and count > size:
                        raise IntegrityError(f"stored object {uri} is larger than the {size} bytes recorded")
                    if progress:
                        progress(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if size is not None and count != size:
            raise IntegrityError(f"stored object {uri} has {count} bytes, {size} were recorded")
        if sha256 is not None and actual != sha256:
            raise IntegrityError(f"stored object {uri} has sha256 {actual}, {sha256} was recorded; "
                                 "the object was changed or substituted after upload")
        os.replace(tmp, dest)
        return count, actual
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise StorageError(f"no space left while downloading {uri} into {dest.parent}") from e
        raise StorageError(f"cannot download {uri}: {e}") from e
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


_SHA256 = re.compile(r"[0-9a-f]{64}")


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
    stamp = _stamp_path(dest)
    tmp = stamp.with_name(f"{stamp.name}.{uuid.uuid4().hex[:12]}{_PARTIAL_MARK}")
    try:
        tmp.write_text(f"{st.st_ino} {st.st_size} {st.st_mtime_ns} {sha256}", encoding="ascii")
        os.replace(tmp, stamp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


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
    name = safe_component(file_name, limit=200)
    if sha256 is None:
        return _first_download(uri, name, size, on_first_hash)
    return _install_in_cache(uri, name, size, sha256,
                             lambda dest: download_verified(uri, dest, size=size, sha256=sha256))


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
    scratch = Path(tempfile.mkdtemp(dir=cache_root(), prefix=".first-", suffix=_PARTIAL_MARK))
    try:
        got_size, got_sha = download_verified(uri, scratch / name, size=size, sha256=None)
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

_FICLONE = 0x40049409  # linux/fs.h: share extents copy-on-write (btrfs, XFS, overlay on those)


def reflink_or_copy(src: str, dest: str) -> str:
    """Copy ``src`` to a new file ``dest``, sharing extents copy-on-write where the filesystem can.

    Returns:
        ``"reflink"`` or ``"copy"``: what it cost.
    """
    with open(src, "rb") as fin, open(dest, "xb") as fout:
        try:
            import fcntl

            fcntl.ioctl(fout.fileno(), _FICLONE, fin.fileno())
            return "reflink"
        except (ImportError, OSError):
            pass  # not supported here: fall back to a real copy
    # copyfile uses the kernel's zero-copy path (sendfile / copy_file_range) where it can.
    shutil.copyfile(src, dest)
    return "copy"


def snapshot_file(src: str, dest: str, mode: str) -> str:
    """Protect ``src`` from later overwrites or deletion for the duration of its upload.

    Args:
        src: The caller's file.
        dest: Where the snapshot goes (inside a private staging folder).
        mode: ``"link"`` (a hardlink: free, survives deletion and replacement of ``src``, and in-place
            rewrites are detected by fingerprint) or ``"copy"`` (reflink where supported, else a copy:
            survives anything).

    Returns:
        What was done: ``"link"``, ``"reflink"``, ``"copy"``, or ``"none"`` when a link was asked for but
        the staging folder is on another filesystem (the source is then read in place, guarded by its
        fingerprint).
    """
    if mode == "link":
        try:
            os.link(src, dest)
            return "link"
        except OSError:
            return "none"
    return reflink_or_copy(src, dest)
