"""Storage audit: re-hash stored objects against the registry, and find objects no version references.

Drift goes both ways. A ``ready`` version whose object is gone or whose bytes no longer match the recorded
size and sha256 is *missing* or *corrupt*; a row whose URI lies outside the registry's destinations is
*refused* and never read (RELIABILITY.md S9). An object modelyard wrote under one of the registry's
destinations that no version references any more is an *orphan* (left by ``modelyard models rm
--keep-files``, a crash between commit and bookkeeping, or a registry row removed by hand).

Only keys in modelyard's own layout (:mod:`modelyard._storage.layout`, one folder per model version) are ever
considered orphans, so files a user keeps beside modelyard's under the same bucket or folder are never
reported or removed. Two registries must not share one destination folder if either runs ``gc``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import _storage
from ._errors import ArchiveError, DestinationError, ModelyardError, StorageError
from ._manifest import Manifest
from ._registry import ACTIVE_STATES, Registry
from ._rows import StoredObject, VersionRow

#: Manifests are small; a larger object at a manifest key is corrupt, not something to read into memory.
_MAX_MANIFEST_BYTES = 64 * 1024 * 1024

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Problem:
    """A ``ready`` version whose stored bytes are not what the registry recorded.

    Attributes:
        kind: ``missing``, ``corrupt``, ``refused`` (URI outside the destinations) or ``unreadable``.
        model_id: The model's id.
        version: The version number.
        uri: The object (or package member) concerned.
        detail: What differs.
    """

    kind: str
    model_id: str
    version: int
    uri: str
    detail: str


@dataclass(frozen=True)
class Orphan:
    """A stored object in modelyard's layout that no version references.

    Attributes:
        uri: The object's URI.
        size: Its size in bytes (``None`` if the store did not say).
    """

    uri: str
    size: int | None


@dataclass
class AuditReport:
    """What :func:`audit` found.

    Attributes:
        versions: Ready versions checked.
        objects: Objects hashed (a package counts its manifest and every member).
        bytes: Bytes hashed.
        unverifiable: ``(model id, version)`` of ready versions with no recorded sha256 (registered URIs
            never downloaded); only their presence and recorded size are checked.
        problems: Versions whose bytes drifted.
        orphans: Objects no version references.
    """

    versions: int = 0
    objects: int = 0
    bytes: int = 0
    unverifiable: list[tuple[str, int]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    orphans: list[Orphan] = field(default_factory=list)

    @property
    def drift(self) -> bool:
        """Whether anything is missing, corrupt, refused, unreadable or orphaned."""
        return bool(self.problems or self.orphans)


def total_recorded_bytes(registry: Registry, model_id: str | None = None) -> int:
    """Return the bytes :func:`audit` will hash (known sizes of ready versions), for a progress bar."""
    return sum(int(r.size or 0) for r in _version_rows(registry, model_id) if r.state == "ready")


def _version_rows(registry: Registry, model_id: str | None) -> list[VersionRow] | list[StoredObject]:
    if model_id is not None:
        registry.get_model(model_id)  # NotFoundError for an unknown id
        return registry.model_versions(model_id)
    return sorted(registry.all_version_uris(), key=lambda r: (str(r.model_id), r.version))


def audit(registry: Registry, *, model_id: str | None = None, progress: Progress | None = None
          ) -> AuditReport:
    """Re-hash every ready version's stored bytes and look for orphans.

    Args:
        registry: The registry to audit.
        model_id: Audit only this model's versions, and only orphans under its own folders.
        progress: Called with the number of bytes just hashed.

    Returns:
        The report; :attr:`AuditReport.drift` tells whether anything is wrong.

    Raises:
        NotFoundError: ``model_id`` names no model.
    """
    # List the stores before reading the version rows: every object listed then has its row already
    # (rows are written before uploads start), so a concurrent upload is never mistaken for an orphan.
    listed = _list_owned_objects(registry, model_id)
    rows = _version_rows(registry, model_id)
    destinations = registry.destinations()
    report = AuditReport()
    for row in rows:
        if row.state == "ready":
            _check_version(row, destinations, report, progress)
    report.orphans = _unreferenced(listed, registry.all_version_uris())
    return report


def find_orphans(registry: Registry, *, model_id: str | None = None) -> list[Orphan]:
    """Return the objects in modelyard's layout under the registry's destinations that nothing references."""
    listed = _list_owned_objects(registry, model_id)
    if model_id is not None:
        registry.get_model(model_id)
    return _unreferenced(listed, registry.all_version_uris())


def remove_orphans(registry: Registry, orphans: Iterable[Orphan]) -> tuple[int, int]:
    """Delete orphan objects (each checked to lie inside a destination first) and empty version folders.

    Returns:
        The number of objects removed and their total size in bytes.
    """
    destinations = registry.destinations()
    count = size = 0
    for orphan in orphans:
        _storage.check_confined(orphan.uri, destinations)
        _storage.delete_uri(orphan.uri)
        count += 1  # delete_uri also drops a local version folder once it is empty
        size += orphan.size or 0
    return count, size


# -- checking one version ---------------------------------------------------------------------------


def _check_version(row: VersionRow | StoredObject, destinations: list[str], report: AuditReport,
                   progress: Progress | None) -> None:
    model_id, number, uri = str(row.model_id), int(row.version), row.uri
    report.versions += 1

    def problem(kind: str, detail: str, where: str = uri) -> None:
        report.problems.append(Problem(kind, model_id, number, where, detail))

    try:
        _storage.check_confined(uri, destinations)
    except DestinationError as e:
        problem("refused", str(e), where=str(uri))
        return
    try:
        if row.package_format == "dir":
            _check_package(uri, row.sha256, report, progress, problem)
            return
        found = _storage.hash_object(uri, progress)
        if found is None:
            problem("missing", "the object does not exist")
            return
        size, sha, _ = found
        report.objects += 1
        report.bytes += size
        if row.size is not None and size != row.size:
            problem("corrupt", f"{size} bytes stored, {row.size} recorded")
        elif row.sha256 is None:
            report.unverifiable.append((model_id, number))
        elif sha != row.sha256:
            problem("corrupt", f"sha256 {sha} stored, {row.sha256} recorded")
    except (ModelyardError, OSError) as e:
        problem("unreadable", f"{type(e).__name__}: {e}")


def _check_package(uri: str, manifest_sha: str | None, report: AuditReport, progress: Progress | None,
                   problem: Callable[..., None]) -> None:
    manifest_uri = _storage.manifest_uri(uri)
    try:
        found = _storage.hash_object(manifest_uri, progress, limit=_MAX_MANIFEST_BYTES)
    except StorageError as e:
        problem("corrupt", str(e), manifest_uri)
        return
    if found is None:
        problem("missing", "the package manifest does not exist", manifest_uri)
        return
    size, sha, data = found
    report.objects += 1
    report.bytes += size
    if manifest_sha is None:
        problem("corrupt", "no sha256 is recorded for the package manifest", manifest_uri)
        return
    if sha != manifest_sha:
        problem("corrupt", f"manifest sha256 {sha} stored, {manifest_sha} recorded", manifest_uri)
        return
    try:
        manifest = Manifest.from_json(data or b"")
    except ArchiveError as e:
        problem("corrupt", f"the manifest is invalid: {e}", manifest_uri)
        return
    for entry in manifest.entries:
        member = _storage.member_uri(uri, entry.path)
        got = _storage.hash_object(member, progress)
        if got is None:
            problem("missing", f"package member {entry.path} does not exist", member)
            continue
        report.objects += 1
        report.bytes += got[0]
        if got[0] != entry.size:
            problem("corrupt", f"package member {entry.path}: {got[0]} bytes stored, {entry.size} recorded",
                    member)
        elif got[1] != entry.sha256:
            problem("corrupt", f"package member {entry.path}: sha256 {got[1]} stored, {entry.sha256} "
                    "recorded", member)


# -- orphans ----------------------------------------------------------------------------------------


def _list_owned_objects(registry: Registry, model_id: str | None) -> dict[str, int | None]:
    """List every object in modelyard's layout below the registry's destinations: URI to size.

    Raises:
        MissingDependencyError: A destination's storage scheme is not installed here (names the package).
        StorageError: A destination cannot be listed; an audit that skipped it would be silently incomplete.
    """
    found: dict[str, int | None] = {}
    for root in registry.destinations():
        protocol, root_path = _storage.split_uri(root)
        fs = _storage.filesystem(protocol)
        try:
            listing = fs.find(root_path, detail=True)
        except FileNotFoundError:
            continue  # nothing was ever written there (or it was removed by hand)
        except OSError as e:
            raise StorageError(f"cannot list the destination {root}: {type(e).__name__}: {e}") from e
        prefix = root_path.rstrip("/") + "/"
        for path, info in listing.items():
            if not path.startswith(prefix) or info.get("type", "file") != "file":
                continue
            owner = _storage.owned_key_model(path[len(prefix):])
            if owner is None or (model_id is not None and owner != model_id):
                continue
            size = info.get("size")
            found[_storage.join_uri(protocol, path)] = int(size) if size is not None else None
    return found


def _unreferenced(listed: dict[str, int | None], rows: list[StoredObject]) -> list[Orphan]:
    exact: set[str] = set()
    folders: set[str] = set()
    for row in rows:
        uri = str(row.uri).rstrip("/")
        exact.add(uri)
        if row.package_format == "dir":
            folders.add(uri)  # every member of a package is the package's
        if row.state in ACTIVE_STATES:
            folders.add(_storage.version_folder(uri))  # an upload in flight owns its version folder (partials)
    orphans = []
    for uri, size in sorted(listed.items()):
        if uri in exact or any(parent in folders for parent in _parents(uri)):
            continue
        orphans.append(Orphan(uri, size))
    return orphans


def _parents(uri: str) -> Iterable[str]:
    while "/" in uri:
        uri = uri.rsplit("/", 1)[0]
        yield uri
