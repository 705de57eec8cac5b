"""Materialise one stored version into a folder of the caller's choice: download, verify, extract.

The shared download cache (``Model.get_weights``) is the right place for code that loads weights; a person
asking for a copy in a folder of their own gets the bytes there directly, with progress, and nothing left
behind unless every byte verified. Every field of the version row is untrusted: its URI must lie inside the
registry's destinations, its file name becomes a safe path component, package members come from a
validated manifest, and zip packages go through the safe extractor.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from . import _storage
from ._errors import FormatError, InvalidArgumentError

if TYPE_CHECKING:
    from ._rows import VersionRow
    from ._terminal import ProgressFactory


def _no_progress(label: str, total: int | None) -> Callable[[int], None]:
    return lambda n: None


def target_name(row: VersionRow) -> str:
    """Return the safe name a version gets in the folder (a zip package's folder drops ``.zip``)."""
    name = _storage.safe_component(str(row.file_name), limit=200)
    if row.package_format == "zip" and name.lower().endswith(".zip") and len(name) > 4:
        name = name[:-4]
    return name


def export_version(row: VersionRow, destinations: list[str], out_dir: Path,
                   progress: ProgressFactory | None = None,
                   on_first_hash: Callable[[int, str], None] | None = None) -> Path:
    """Download a ready version into ``out_dir`` and return the file (or the package folder) created.

    Args:
        row: The version's registry row.
        destinations: The registry's destinations; the row's URI must lie inside one.
        out_dir: The folder (created if missing).
        progress: Progress callbacks for the bytes transferred (default: none).
        on_first_hash: For a version with no recorded sha256 (a registered URI), called with the size and
            sha256 downloaded, to record them (trust on first use); it raises to refuse them.

    Raises:
        InvalidArgumentError: The target already exists.
        DestinationError: The URI lies outside the destinations.
        IntegrityError: The bytes do not match the recorded size or sha256 (nothing is left behind).
        ArchiveError: A zip package is unsafe.
    """
    progress = progress or _no_progress
    uri = row.uri
    _storage.check_confined(uri, destinations)
    kind = row.package_format
    name = target_name(row)
    target = out_dir.absolute() / name
    if os.path.lexists(target):
        raise InvalidArgumentError(f"{target} already exists; remove it or choose another folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    first = on_first_hash if row.sha256 is None else None
    if kind is None:
        got = _storage.download_verified(uri, target, size=row.size, sha256=row.sha256,
                                         progress=progress(name, row.size))
        if first is not None:
            try:
                first(*got)
            except BaseException:
                target.unlink()
                raise
        return target
    if kind not in ("zip", "dir"):
        raise FormatError(f"version {row.version} has an unknown package format {kind!r}; "
                          "upgrade modelyard")
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}.", suffix=".modelyard-partial"))
    try:
        if kind == "zip":
            from ._zip import safe_extract_zip

            archive = scratch / "package.zip"
            got = _storage.download_verified(uri, archive, size=row.size, sha256=row.sha256,
                                             progress=progress(name, row.size))
            if first is not None:
                first(*got)
            safe_extract_zip(archive, target)
        else:
            _export_package(uri, row.sha256, scratch, target, progress)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _export_package(uri: str, manifest_sha: str | None, scratch: Path, target: Path,
                    progress: ProgressFactory) -> None:
    """Fetch a folder package into ``scratch`` (manifest, then each member, verified), then rename it to ``target``."""
    folder, _ = _storage.download_package(uri, manifest_sha, scratch,
                                          progress=lambda total: progress(target.name, total))
    os.rename(folder, target)
