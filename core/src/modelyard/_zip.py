"""Zip archives: inspection and all-or-nothing safe extraction.

A leaf module: it imports only the standard library and the other leaves (:mod:`modelyard._member_names`,
:mod:`modelyard._files`, :mod:`modelyard._errors`).

Extraction is allow-list only (RELIABILITY.md invariant 3, S1-S5). Every name, type, size and byte range of
an archive is validated before a single byte is written, and bytes are written into a fresh private
directory that is renamed into place only when complete. Python's :mod:`zipfile` is used to parse the central
directory and to decompress, never to choose paths: its ``extract`` silently renames hostile members, and
Python 3.11.7 lacks the overlapping-entry check of CVE-2024-0450, so both are done here.
"""

from __future__ import annotations

import os
import shutil
import stat
import struct
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard._errors import ArchiveError, InvalidArgumentError, short_repr
from modelyard._files import StrPath, fsync_dir, fsync_file
from modelyard._member_names import check_names_unique, validate_member_name

__all__ = ["ZipLimits", "ZipMember", "inspect_zip", "safe_extract_zip"]

_CHUNK = 1 << 20
_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
# Decompressors zipfile supports; anything else (and strong encryption) is refused up front.
_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
# Errors zipfile and its decompressors raise for malformed input (zlib.error and lzma.LZMAError are
# Exception subclasses without a common base, hence the broad Exception in the handlers below).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, RuntimeError,
               ValueError, struct.error)


def _short(value: object, limit: int = 80) -> str:
    return short_repr(value, limit)


@dataclass(frozen=True)
class ZipLimits:
    """Bounds an archive must stay within to be extracted (S4: zip bombs).

    Attributes:
        max_entries: Most members (files and directories) an archive may hold.
        max_total_size: Most bytes all members may decompress to, in total.
        max_ratio: Highest decompressed/compressed ratio of one member larger than ``ratio_min_size``.
        ratio_min_size: Members at most this large are exempt from the ratio bound (tiny files compress
            wildly, and cannot make a bomb).
    """

    max_entries: int = 10_000
    max_total_size: int = 64 << 30  # 64 GiB: room for large models, still a bound on disk use
    max_ratio: int = 200
    ratio_min_size: int = 1 << 20

    def __post_init__(self) -> None:
        for name in ("max_entries", "max_total_size", "max_ratio", "ratio_min_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgumentError(f"ZipLimits.{name} must be a non-negative int, not {value!r}.")


@dataclass(frozen=True)
class ZipMember:
    """One validated member of a zip archive.

    Attributes:
        name: The normalised member name (no trailing ``/`` for directories).
        is_dir: Whether the member is a directory entry.
        file_size: Declared decompressed size; extraction refuses any other actual size.
        compress_size: Compressed size.
        info: zipfile's record of the member, used to decompress it.
    """

    name: str
    is_dir: bool
    file_size: int
    compress_size: int
    info: zipfile.ZipInfo = field(repr=False, compare=False)


def _claimed_entry_count(f: Any, size: int) -> int:
    """Read the entry count the end-of-central-directory record claims, without parsing the directory."""
    tail_len = min(size, _EOCD.size + 0xFFFF)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    pos = tail.rfind(b"PK\x05\x06")  # the last record, as zipfile picks it
    if pos < 0 or pos + _EOCD.size > len(tail):
        raise ArchiveError("it has no end-of-central-directory record")
    _, disk, cd_disk, disk_entries, total, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, pos)
    if disk or cd_disk or disk_entries != total:
        raise ArchiveError("it spans several disks")
    if 0xFFFF not in (total, disk_entries) and 0xFFFFFFFF not in (cd_size, cd_offset):
        return total
    locator_at = size - tail_len + pos - _ZIP64_LOCATOR.size
    if locator_at < _ZIP64_EOCD.size:
        return total
    f.seek(locator_at)
    signature, disk_no, _, disks = _ZIP64_LOCATOR.unpack(f.read(_ZIP64_LOCATOR.size))
    if signature != b"PK\x06\x07":
        return total
    if disk_no or disks > 1:
        raise ArchiveError("it spans several disks")
    f.seek(locator_at - _ZIP64_EOCD.size)  # where zipfile reads the zip64 record from
    record = _ZIP64_EOCD.unpack(f.read(_ZIP64_EOCD.size))
    if record[0] != b"PK\x06\x06" or record[6] != record[7]:
        raise ArchiveError("its zip64 end-of-central-directory record is malformed")
    return int(record[7])


def _check_member(info: zipfile.ZipInfo, limits: ZipLimits) -> ZipMember:
    raw = info.orig_filename  # zipfile truncates .filename at a NUL; the original keeps it
    is_dir = raw.endswith("/")
    name = validate_member_name(raw, allow_dir=True)

    def refuse(why: str) -> ArchiveError:
        return ArchiveError(f"Member {_short(raw)} is refused: {why}.")

    # Bits 0 (encrypted), 5 (patched data) and 6 (strong encryption) all need what we do not support.
    if info.flag_bits & 0x61:
        raise refuse("it is encrypted or patched")
    if info.compress_type not in _METHODS:
        raise refuse(f"its compression method {info.compress_type} is not supported")
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        raise refuse("it is a symbolic link")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise refuse("it is not a regular file or directory (a link, device, FIFO or socket)")
    if (kind == stat.S_IFDIR) != is_dir and kind:
        raise refuse("its file type and its name disagree about whether it is a directory")
    if is_dir and info.file_size:  # (an empty deflate stream still takes 2 bytes: compress_size may be 2)
        raise refuse("it is a directory entry with data")
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        raise refuse("it is stored uncompressed but its two sizes differ")
    if info.file_size > limits.ratio_min_size and info.file_size > info.compress_size * limits.max_ratio:
        raise refuse(f"it expands {info.compress_size} bytes to {info.file_size} (over "
                     f"{limits.max_ratio}:1, a zip bomb)")
    return ZipMember(name, is_dir, info.file_size, info.compress_size, info)


def _check_ranges(f: Any, infos: list[zipfile.ZipInfo], start_dir: int) -> None:
    """Refuse members whose bytes overlap another's or lie outside the archive data (CVE-2024-0450)."""
    spans = []
    for info in infos:
        offset = info.header_offset
        if offset < 0 or offset + _LOCAL_HEADER.size > start_dir:
            raise ArchiveError(f"Member {_short(info.orig_filename)} has its header outside the archive.")
        f.seek(offset)
        fields = _LOCAL_HEADER.unpack(f.read(_LOCAL_HEADER.size))
        signature, _, flags, method, name_len, extra_len = fields[0], *fields[1:4], *fields[-2:]
        encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
        if (signature != b"PK\x03\x04" or f.read(name_len) != info.orig_filename.encode(encoding)
                or method != info.compress_type or (flags ^ info.flag_bits) & 1):
            # Readers that trust the local header would see a different file than this check did.
            raise ArchiveError(f"Member {_short(info.orig_filename)}: its local header disagrees with the "
                               "central directory.")
        end = offset + _LOCAL_HEADER.size + name_len + extra_len + info.compress_size
        if end > start_dir:
            raise ArchiveError(f"Member {_short(info.orig_filename)} extends past the archive data.")
        spans.append((offset, end, info.orig_filename))
    spans.sort()
    for (_, end, first), (begin, _, second) in zip(spans, spans[1:], strict=False):
        if begin < end:
            raise ArchiveError(f"Members {_short(first)} and {_short(second)} overlap (a zip bomb).")


def _inspect(f: Any, zf: zipfile.ZipFile, claimed: int, limits: ZipLimits) -> list[ZipMember]:
    infos = zf.infolist()
    if len(infos) != claimed:
        raise ArchiveError(f"it claims {claimed} entries but its central directory holds {len(infos)}")
    members = [_check_member(info, limits) for info in infos]
    total = sum(m.file_size for m in members)
    if total > limits.max_total_size:
        raise ArchiveError(f"it expands to {total} bytes, over the limit of {limits.max_total_size}")
    check_names_unique([m.name for m in members if not m.is_dir], [m.name for m in members if m.is_dir])
    _check_ranges(f, infos, zf.start_dir)
    return members


def _open_checked(f: Any, limits: ZipLimits) -> tuple[zipfile.ZipFile, list[ZipMember]]:
    claimed = _claimed_entry_count(f, os.fstat(f.fileno()).st_size)
    if claimed > limits.max_entries:  # refused before zipfile parses a single directory record
        raise ArchiveError(f"it claims {claimed} entries, over the limit of {limits.max_entries}")
    zf = zipfile.ZipFile(f)
    try:
        return zf, _inspect(f, zf, claimed, limits)
    except BaseException:
        zf.close()
        raise


def _refused(path: StrPath, e: Exception) -> ArchiveError:
    text = str(e)
    if text.startswith("Member"):
        return ArchiveError(f"Archive {os.fspath(path)!r}: {text} Nothing was extracted.")
    return ArchiveError(f"Archive {os.fspath(path)!r} is refused: {text}. Nothing was extracted.")


def inspect_zip(path: StrPath, limits: ZipLimits = ZipLimits()) -> list[ZipMember]:  # noqa: B008 - frozen
    """Validate a zip archive completely, writing nothing.

    Args:
        path: The archive.
        limits: The bounds to enforce.

    Returns:
        Its members, in central-directory order.

    Raises:
        ArchiveError: A member name is unsafe (:func:`validate_member_name`) or collides
            (:func:`check_names_unique`); a member is a link, device, FIFO or socket, encrypted, or uses an
            unsupported method; the entry count, total size or a compression ratio exceeds ``limits``;
            members overlap or lie outside the file; or the archive is malformed.
        OSError: The file cannot be read.
    """
    try:
        with open(path, "rb") as f:
            zf, members = _open_checked(f, limits)
            zf.close()
            return members
    except ArchiveError as e:
        raise _refused(path, e) from None
    except _ZIP_ERRORS as e:
        raise _refused(path, e) from e


def _make_dirs(root: Path, parts: Sequence[str], made: list[Path]) -> Path:
    folder = root
    for part in parts:
        folder = folder / part
        try:
            os.mkdir(folder)
            made.append(folder)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(folder).st_mode):  # never descend through a link
                raise ArchiveError(f"{_short(part)} is both a file and a directory") from None
    return folder


def _extract_member(zf: zipfile.ZipFile, member: ZipMember, target: Path) -> None:
    flags = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
             | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0))
    with open(os.open(target, flags, 0o666), "wb") as out, zf.open(member.info) as src:
        written = 0
        # Header sizes can lie: count what actually comes out, and stop the moment it exceeds the declared
        # size (zipfile checks the CRC at the end of the stream).
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            if written > member.file_size:
                raise ArchiveError(f"Member {_short(member.name)} holds more than its declared "
                                   f"{member.file_size} bytes.")
            out.write(chunk)
        if written != member.file_size:
            raise ArchiveError(f"Member {_short(member.name)} holds {written} bytes, not its declared "
                               f"{member.file_size}.")
    fsync_file(target)  # in the private folder, which is renamed into place only when every member is durable


def safe_extract_zip(path: StrPath, dest_dir: StrPath,
                     limits: ZipLimits = ZipLimits()) -> Path:  # noqa: B008 - frozen
    """Extract a zip archive into a new directory, all or nothing.

    The archive is inspected completely first (:func:`inspect_zip`). Members are then written into a fresh
    private (0o700) directory beside ``dest_dir`` with exclusive, no-follow creates, and that directory is
    renamed to ``dest_dir`` once every member is complete, size-checked, CRC-checked and fsynced. Member
    modes are not restored: files get ``0o666 & ~umask``; ``dest_dir`` keeps mode 0o700.

    Args:
        path: The archive.
        dest_dir: The directory to create. It must not exist (not even as a symlink, which is never followed).
            Missing parents are created.
        limits: The bounds to enforce.

    Returns:
        ``dest_dir`` as a Path.

    Raises:
        ArchiveError: ``dest_dir`` exists, the archive is refused (see :func:`inspect_zip`), or a member's
            bytes do not match its declared size or CRC. Nothing partial is left behind.
        OSError: Reading or writing failed (e.g. the disk is full); nothing partial is left behind.
    """
    dest = Path(dest_dir)
    if os.path.lexists(dest):
        raise ArchiveError(f"Cannot extract {os.fspath(path)!r} into {os.fspath(dest)!r}: it already exists. "
                           "Extraction only creates a new directory; remove it or choose another.")
    with open(path, "rb") as f:
        try:
            zf, members = _open_checked(f, limits)
        except ArchiveError as e:
            raise _refused(path, e) from None
        except _ZIP_ERRORS as e:
            raise _refused(path, e) from e
        with zf:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name[:64]}.", suffix=".extracting", dir=dest.parent))
            try:
                made = [tmp]
                for member in members:
                    parts = member.name.split("/")
                    if member.is_dir:
                        _make_dirs(tmp, parts, made)
                    else:
                        _extract_member(zf, member, _make_dirs(tmp, parts[:-1], made) / parts[-1])
                for folder in made:
                    fsync_dir(folder)
                if os.path.lexists(dest):
                    raise ArchiveError(f"{os.fspath(dest)!r} appeared while extracting; it was left alone.")
                # rename() replaces nothing here and never follows a symlink planted at dest.
                os.rename(tmp, dest)
            except BaseException as e:
                shutil.rmtree(tmp, ignore_errors=True)
                if isinstance(e, ArchiveError):
                    raise _refused(path, e) from None
                if isinstance(e, OSError) or not isinstance(e, Exception):
                    raise
                raise _refused(path, e) from e  # zlib, lzma and CRC errors from hostile compressed data
    fsync_dir(dest.parent)
    return dest

