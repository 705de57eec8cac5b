"""Package member names: the one rule for zip members, manifest entries and the files of folder packages.

A leaf module: it imports only the standard library and :mod:`modelyard._errors` (RELIABILITY.md S1, S5).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from modelyard._errors import ArchiveError, short_repr

__all__ = ["check_names_unique", "validate_member_name"]

_MAX_NAME = 4096
_MAX_COMPONENT_BYTES = 255  # the usual file-system limit, in encoded bytes


def _short(value: object, limit: int = 80) -> str:
    return short_repr(value, limit)


def validate_member_name(name: object, *, allow_dir: bool = False) -> str:
    """Check a package member name and return it as a normalised POSIX relative path.

    The same rule applies to zip members, manifest entries and the files of directory packages.

    Args:
        name: The name, e.g. ``"weights/model.safetensors"``.
        allow_dir: Accept one trailing ``/`` (a zip directory entry); it is removed from the result.

    Returns:
        The name with ``.`` components removed.

    Raises:
        ArchiveError: The name is not a string, is empty, absolute, has a drive or colon, a UNC prefix, a
            ``..`` component, a backslash, an empty component (``a//b``, or a trailing ``/`` for a file), a
            NUL or other control character, a lone surrogate, more than 4096 characters, or a component of
            more than 255 bytes.
    """
    if not isinstance(name, str):
        raise ArchiveError(f"Member name {_short(name)} is a {type(name).__name__}, not a string.")

    def refuse(why: str) -> ArchiveError:
        return ArchiveError(f"Member name {_short(name)} is refused: {why}.")

    if not name:
        raise refuse("it is empty")
    if len(name) > _MAX_NAME:
        raise refuse(f"it is longer than {_MAX_NAME} characters")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in name):
        raise refuse("it contains a NUL or control character")
    if "\\" in name:
        raise refuse("it contains a backslash (a Windows separator, or a traversal on Windows)")
    if name.startswith("/"):
        raise refuse("it is an absolute path")
    if ":" in name:
        # Drive letters (C:x), and NTFS alternate streams (a:b) when extracted on Windows.
        raise refuse("it contains ':' (a drive letter or stream name on Windows)")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise refuse("it contains a lone surrogate") from None
    body = name[:-1] if allow_dir and name.endswith("/") else name
    parts = body.split("/")
    for part in parts:
        if part == "..":
            raise refuse("it has a '..' component")
        if part == "":
            raise refuse("it has an empty component (a doubled or trailing '/')")
        if len(part.encode("utf-8")) > _MAX_COMPONENT_BYTES:
            raise refuse(f"a component is longer than {_MAX_COMPONENT_BYTES} bytes")
    kept = [part for part in parts if part != "."]
    if not kept:
        raise refuse("it names the package root")
    return "/".join(kept)


def _fold(name: str) -> str:
    # Canonical caseless matching (Unicode 3.13): equal for names that differ by case or NFC/NFD form,
    # i.e. names that collide on case-insensitive or normalising file systems (macOS, Windows).
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())


def check_names_unique(names: Iterable[str], dirs: Iterable[str] = ()) -> None:
    """Refuse names that would collide once extracted anywhere.

    Args:
        names: Normalised file names (as returned by :func:`validate_member_name`).
        dirs: Normalised directory names, when the package lists directories explicitly.

    Raises:
        ArchiveError: Two names are equal, differ only by case or Unicode normalisation (NFC/NFD), or a file
            name is also used as a directory (``a`` and ``a/b``). The later name never silently wins.
    """
    names, dirs = list(names), list(dirs)
    seen: dict[str, str] = {}
    for kind, group in (("file", names), ("directory", dirs)):
        for name in group:
            key = _fold(name)
            if key in seen:
                same = "the same name" if seen[key] == name else "names that collide (case or Unicode form)"
                raise ArchiveError(f"The package lists {_short(seen[key])} and {_short(name)}: {same}; "
                                   f"refusing rather than letting one {kind} replace the other.")
            seen[key] = name
    file_keys = {_fold(name) for name in names}
    for key in file_keys:
        parent = key.rpartition("/")[0]
        while parent:
            if parent in file_keys:
                raise ArchiveError(f"The package uses {_short(seen[parent])} both as a file and as a "
                                   "directory.")
            parent = parent.rpartition("/")[0]

