"""Package manifests: the list of a folder package's files with their sizes and sha256, stored beside them.

A leaf module: it imports only the standard library and the other leaves. Manifests read back from storage
are untrusted: every field is validated (RELIABILITY.md invariant 1).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from modelyard._errors import ArchiveError, short_repr
from modelyard._files import StrPath, sha256_file
from modelyard._member_names import check_names_unique, validate_member_name

__all__ = ["MANIFEST_NAME", "Manifest", "ManifestEntry"]

#: The name under which a package's manifest is stored beside its files (keys: :mod:`modelyard._storage.layout`).
MANIFEST_NAME = "modelyard-manifest.json"

_MAX_MANIFEST_ENTRIES = 100_000
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MANIFEST_FORMAT = "modelyard-manifest"


def _short(value: object, limit: int = 80) -> str:
    return short_repr(value, limit)



@dataclass(frozen=True)
class ManifestEntry:
    """One file of a package.

    Attributes:
        path: The normalised member name.
        size: Its size in bytes.
        sha256: Its sha256, 64 lowercase hex digits.
    """

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """The list of a package's files with their sizes and hashes, stored as :data:`MANIFEST_NAME`.

    Entries are validated on construction (names as :func:`validate_member_name`, collision-free, sizes
    non-negative ints, hashes 64 lowercase hex digits) and kept sorted by path.

    Attributes:
        entries: The files, sorted by path.
    """

    entries: tuple[ManifestEntry, ...]

    def __post_init__(self) -> None:
        entries = tuple(sorted(self.entries, key=lambda entry: entry.path))
        if len(entries) > _MAX_MANIFEST_ENTRIES:
            raise ArchiveError(f"The manifest lists {len(entries)} files, over the limit of "
                               f"{_MAX_MANIFEST_ENTRIES}.")
        for entry in entries:
            if not isinstance(entry, ManifestEntry):
                raise ArchiveError(f"Manifest entries must be ManifestEntry, not {type(entry).__name__}.")
            if validate_member_name(entry.path) != entry.path:
                raise ArchiveError(f"Manifest path {_short(entry.path)} is not normalised.")
            if isinstance(entry.size, bool) or not isinstance(entry.size, int) or not 0 <= entry.size < 2**63:
                raise ArchiveError(f"Manifest size {_short(entry.size)} of {_short(entry.path)} is not an "
                                   "integer from 0 to 2**63 - 1.")
            if not isinstance(entry.sha256, str) or not _SHA256.fullmatch(entry.sha256):
                raise ArchiveError(f"Manifest sha256 {_short(entry.sha256)} of {_short(entry.path)} is not "
                                   "64 lowercase hex digits.")
        check_names_unique(entry.path for entry in entries)
        object.__setattr__(self, "entries", entries)

    @property
    def total_size(self) -> int:
        """The total size of the package's files, in bytes."""
        return sum(entry.size for entry in self.entries)

    def to_json(self) -> str:
        """Return the manifest as canonical JSON text."""
        files = [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in self.entries]
        return json.dumps({"format": _MANIFEST_FORMAT, "version": 1, "files": files}, ensure_ascii=False,
                          indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """Parse manifest text read back from storage, treating every field as untrusted.

        Args:
            text: The JSON text (bytes are decoded as strict UTF-8).

        Returns:
            The manifest.

        Raises:
            ArchiveError: The text is not a valid manifest (wrong format or version, unknown or repeated keys,
                an unsafe or colliding path, a bad size or hash, too many entries).
        """
        def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
            if len({key for key, _ in items}) != len(items):
                raise ArchiveError("The manifest repeats a key.")
            return dict(items)

        def refuse_constant(name: str) -> None:
            raise ArchiveError(f"The manifest contains {name}.")

        try:
            if isinstance(text, bytes):
                text = text.decode("utf-8")
            if not isinstance(text, str):
                raise ArchiveError(f"A manifest must be text, not {type(text).__name__}.")
            data = json.loads(text, object_pairs_hook=pairs, parse_constant=refuse_constant)
        except ArchiveError:
            raise
        except RecursionError:
            raise ArchiveError("The manifest is nested too deeply.") from None
        except ValueError as e:  # UnicodeDecodeError, JSONDecodeError, over-long integers
            raise ArchiveError(f"The manifest is not valid UTF-8 JSON: {_short(str(e), 200)}") from None
        if (not isinstance(data, dict) or set(data) != {"format", "version", "files"}
                or data["format"] != _MANIFEST_FORMAT):
            raise ArchiveError("The text is not a modelyard manifest.")
        if type(data["version"]) is not int or data["version"] != 1:
            raise ArchiveError(f"Manifest version {_short(data['version'])} is not supported; upgrade "
                               "modelyard.")
        files = data["files"]
        if not isinstance(files, list) or len(files) > _MAX_MANIFEST_ENTRIES:
            raise ArchiveError("The manifest's file list is not a list of at most "
                               f"{_MAX_MANIFEST_ENTRIES} entries.")
        entries = []
        for item in files:
            if not isinstance(item, dict) or set(item) != {"path", "size", "sha256"}:
                raise ArchiveError(f"Manifest entry {_short(item)} does not have exactly path, size and "
                                   "sha256.")
            entries.append(ManifestEntry(item["path"], item["size"], item["sha256"]))
        return cls(tuple(entries))

    @classmethod
    def from_files(cls, files: Iterable[tuple[str, StrPath]]) -> Manifest:
        """Build a manifest by hashing files, streaming them in chunks.

        Args:
            files: ``(name, path)`` pairs, as returned by :func:`collect_package_files`.

        Returns:
            The manifest.

        Raises:
            ArchiveError: A name is unsafe or two names collide.
            OSError: A file cannot be read.
        """
        entries = []
        for name, source in files:
            size, sha = sha256_file(source)
            entries.append(ManifestEntry(validate_member_name(name), size, sha))
        return cls(tuple(entries))
