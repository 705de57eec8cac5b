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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import _storage
from ._errors import FormatError, IntegrityError, InvalidArgumentError
from ._uploads import MANIFEST_NAME

#: ``start(label, total_bytes)`` returns ``advance(n_bytes)``.
ProgressFactory = Callable[[str, "int | None"], Callable[[int], None]]


def _no_progress(label: str, total: int | None) -> Callable[[int], None]:
    return lambda n: None


def target_name(row: Mapping[str, Any]) -> str:
    """Return the safe name a version gets in the folder (a zip package's folder drops ``.zip``)."""
    name = _storage.safe_component(str(row["file_name"]), limit=200)
    if row["package_format"] == "zip" and name.lower().endswith(".zip") and len(name) > 4:
        name = name[:-4]
    return name


def export_version(row: Mapping[str, Any], destinations: list[str], out_dir: Path,
                   progress: ProgressFactory = _no_progress,
                   on_first_hash: Callable[[int, str], None] | None = None) -> Path:
    """Download a ready version into ``out_dir`` and return the file (or the package folder) created.

    Args:
        row: The version's registry row.
        destinations: The registry's destinations; the row's URI must lie inside one.
        out_dir: The folder (created if missing).
        progress: Progress callbacks for the bytes transferred.
        on_first_hash: For a version with no recorded sha256 (a registered URI), called with the size and
            sha256 downloaded, to record them (trust on first use); it raises to refuse them.

    Raises:
        InvalidArgumentError: The target already exists.
        DestinationError: The URI lies outside the destinations.
        IntegrityError: The bytes do not match the recorded size or sha256 (nothing is left behind).
        ArchiveError: A zip package is unsafe.
    """
    uri = row["uri"]
    _storage.check_confined(uri, destinations)
    kind = row["package_format"]
    name = target_name(row)
    target = out_dir.absolute() / name
    if os.path.lexists(target):
        raise InvalidArgumentError(f"{target} already exists; remove it or choose another folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    first = on_first_hash if row["sha256"] is None else None
    if kind is None:
        got = _storage.download_verified(uri, target, size=row["size"], sha256=row["sha256"],
                                         progress=progress(name, row["size"]))
        if first is not None:
            try:
                first(*got)
            except BaseException:
                target.unlink()
                raise
        return target
    if kind not in ("zip", "dir"):
        raise FormatError(f"version {row['version']} has an unknown package format {kind!r}; "
                          "upgrade modelyard")
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}.", suffix=".modelyard-partial"))
    try:
        if kind == "zip":
            from ._packages import safe_extract_zip

            archive = scratch / "package.zip"
            got = _storage.download_verified(uri, archive, size=row["size"], sha256=row["sha256"],
                                             progress=progress(name, row["size"]))
            if first is not None:
                first(*got)
            safe_extract_zip(archive, target)
        else:
            _export_package(uri, row["sha256"], scratch, target, progress)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _export_package(uri: str, manifest_sha: str | None, scratch: Path, target: Path,
                    progress: ProgressFactory) -> None:
    """Fetch a folder package into ``scratch``, then rename the finished folder to ``target``.

    The manifest is verified against the registry's sha256, then each member against the manifest.
    """
    from ._packages import Manifest

    if manifest_sha is None:
        raise IntegrityError(f"no sha256 is recorded for the manifest of the package at {uri}; the registry "
                             "row may be corrupt")
    base = uri.rstrip("/")
    manifest_path = scratch / MANIFEST_NAME
    _storage.download_verified(f"{base}/{MANIFEST_NAME}", manifest_path, size=None, sha256=manifest_sha)
    manifest = Manifest.from_json(manifest_path.read_bytes())
    folder = scratch / "package"
    folder.mkdir()
    advance = progress(target.name, manifest.total_size)
    for entry in manifest.entries:
        _storage.download_verified(f"{base}/{_storage.package_key(entry.path)}",
                                   folder.joinpath(*entry.path.split("/")), size=entry.size,
                                   sha256=entry.sha256, progress=advance)
    os.rename(folder, target)
