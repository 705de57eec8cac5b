"""Multi-file model packages: the files a caller hands over, and the package API in one import.

:func:`collect_package_files` turns ``weights_filenames`` / ``weights_path`` into validated member names. The
concepts a package is made of live in their own leaf modules and are re-exported here for the layers above:
member names (:mod:`modelyard._member_names`), manifests (:mod:`modelyard._manifest`) and zip archives
(:mod:`modelyard._zip`, imported only when a zip is handled).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from modelyard._errors import InvalidArgumentError, short_repr
from modelyard._files import StrPath
from modelyard._manifest import MANIFEST_NAME, Manifest, ManifestEntry
from modelyard._member_names import check_names_unique, validate_member_name
from modelyard._zip import ZipLimits, ZipMember, inspect_zip, safe_extract_zip

__all__ = ["MANIFEST_NAME", "Manifest", "ManifestEntry", "ZipLimits", "ZipMember", "check_names_unique",
           "collect_package_files", "inspect_zip", "safe_extract_zip", "validate_member_name"]


def _short(value: object, limit: int = 80) -> str:
    return short_repr(value, limit)


def _walk_error(error: OSError) -> None:
    raise error  # os.walk skips unreadable folders silently by default; a package must not lose files


def _collect_dir(root: Path) -> list[tuple[str, Path]]:
    if not root.is_dir():
        raise InvalidArgumentError(f"weights_path {os.fspath(root)!r} is not a directory.")
    real_root = root.resolve(strict=True)
    files: list[tuple[str, Path]] = []
    for folder, dirnames, filenames in os.walk(real_root, followlinks=False, onerror=_walk_error):
        for entry in dirnames:
            if os.path.islink(os.path.join(folder, entry)):
                rel = Path(folder, entry).relative_to(real_root).as_posix()
                raise InvalidArgumentError(f"{rel!r} in {os.fspath(root)!r} is a link to a directory; "
                                           "packages do not follow directory links. Copy the directory.")
        for entry in filenames:
            full = Path(folder, entry)
            rel = full.relative_to(real_root).as_posix()
            mode = os.lstat(full).st_mode
            if stat.S_ISLNK(mode):
                target = full.resolve()
                # A file link is kept only when it stays inside the package: no link exfiltrates a file.
                if not (target.is_relative_to(real_root) and target.is_file()):
                    raise InvalidArgumentError(f"{rel!r} in {os.fspath(root)!r} is a link to outside the "
                                               "folder or to something that is not a regular file.")
                full = target
            elif not stat.S_ISREG(mode):
                raise InvalidArgumentError(f"{rel!r} in {os.fspath(root)!r} is not a regular file.")
            files.append((validate_member_name(rel), full))
    if not files:
        raise InvalidArgumentError(f"weights_path {os.fspath(root)!r} contains no files.")
    return files


def collect_package_files(weights_filenames: Sequence[StrPath] | None = None,
                          weights_path: StrPath | None = None) -> list[tuple[str, Path]]:
    """List the files of a multi-file package, with the names they will have inside it.

    Args:
        weights_filenames: Individual files; each is stored under its base name.
        weights_path: A directory; every regular file below it is stored under its relative POSIX path.
            Directory links are refused, file links are followed only to files inside the directory.

    Returns:
        ``(name, path)`` pairs sorted by name, names validated and collision-free.

    Raises:
        InvalidArgumentError: Not exactly one argument was given; a file is missing or not a regular file; the
            directory is empty or holds a refused link or special file.
        ArchiveError: A name is unsafe or two names collide (e.g. ``A.bin`` and ``a.bin``).
    """
    if (weights_filenames is None) == (weights_path is None):
        raise InvalidArgumentError("Pass exactly one of weights_filenames (a list of files) or weights_path "
                                   "(a directory).")
    if weights_path is not None:
        files = _collect_dir(Path(weights_path))
    else:
        single = isinstance(weights_filenames, str | bytes | os.PathLike)
        if single or not isinstance(weights_filenames, Sequence):
            raise InvalidArgumentError("weights_filenames must be a list of file paths, not "
                                       f"{type(weights_filenames).__name__}; wrap a single file in a list.")
        if not weights_filenames:
            raise InvalidArgumentError("weights_filenames is empty.")
        files = []
        for item in weights_filenames:
            try:
                source = Path(item)
            except TypeError:
                raise InvalidArgumentError(f"weights_filenames holds {_short(item)}, not a path.") from None
            if not source.is_file():
                raise InvalidArgumentError(f"{os.fspath(source)!r} does not exist or is not a regular file.")
            files.append((validate_member_name(source.name), source.resolve(strict=True)))
    check_names_unique(name for name, _ in files)
    return sorted(files)

