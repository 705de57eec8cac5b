"""Model versions: the immutable record of one ``update_weights``, and reading and deleting stored ones.

Every field of a version row is untrusted (RELIABILITY.md invariant 1): URIs are confined to the registry's
destinations before any read or delete, and package manifests are validated before any file is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from . import _storage
from ._registry import Registry
from ._rows import StoredObject, VersionRow


@dataclass(frozen=True)
class ModelVersion:
    """One immutable weights version of a model.

    Attributes:
        version: 1 for the first ``update_weights`` of a model, then 2, 3, ...
        iteration: The training iteration the caller gave (``None`` if none; 0 is a real iteration).
        uri: Where the bytes are (a folder for packages).
        file_name: The stored file's name (or the package's folder name).
        size: Bytes stored (``None`` until ready, or for registered URIs of unknown size).
        sha256: Hex digest of the bytes (of the manifest for packages).
        state: ``pending``, ``uploading``, ``ready`` or ``failed``.
        error: Why it failed.
        created: Creation time (seconds since the epoch).
        package_format: ``None`` for one file, ``"dir"`` for a folder package, ``"zip"`` for a zip package.
        tags: Version tags (integrations use ``best``/``last``).
        metadata: Caller-supplied metadata (metric names and values, framework details).
        pinned: Retention never removes a pinned version.
        model_id: The id of the model the version belongs to.
    """

    version: int
    iteration: int | None
    uri: str
    file_name: str
    size: int | None
    sha256: str | None
    state: str
    error: str | None
    created: float
    package_format: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    pinned: bool = False
    model_id: str = ""

    @classmethod
    def from_row(cls, row: VersionRow) -> ModelVersion:
        """Build from a registry row."""
        return cls(version=row.version, iteration=row.iteration, uri=row.uri,
                   file_name=row.file_name, size=row.size, sha256=row.sha256, state=row.state,
                   error=row.error, created=row.created, package_format=row.package_format,
                   tags=list(row.tags or []), metadata=dict(row.meta or {}), pinned=bool(row.pinned),
                   model_id=row.model_id)

    def to_dict(self) -> dict[str, Any]:
        """Return the version as JSON-safe values: what ``modelyard models show --json`` prints per version.

        ``created`` is ISO 8601 UTC (``None`` if the stored time is not one); ``model_id`` is left out, as the
        model that lists its versions already names it.
        """
        return {"version": self.version, "iteration": self.iteration, "state": self.state, "size": self.size,
                "sha256": self.sha256, "uri": self.uri, "file_name": self.file_name,
                "package_format": self.package_format, "tags": list(self.tags), "metadata": dict(self.metadata),
                "pinned": self.pinned, "error": self.error, "created": iso_time(self.created)}


def iso_time(timestamp: Any) -> str | None:
    """Format seconds since the epoch as ISO 8601 UTC (``None`` for a value that is not a time)."""
    try:
        moment = datetime.fromtimestamp(float(timestamp), tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def delete_object_if_unused(registry: Registry, row: VersionRow | StoredObject, removing_model: str | None = None
                             ) -> None:
    """Delete a version's object unless another version still references it (deduplication)."""
    uri = row.uri
    users = [r for r in registry.uri_users(uri) if r.id != row.id
             and (removing_model is None or r.model_id != removing_model)]
    if users:
        return
    destinations = registry.destinations()
    _storage.check_confined(uri, destinations)
    if _storage.owning_model(uri, destinations) != row.model_id:
        # A registered URI is someone else's object, and a row changed to point at a destination's root or
        # at another model's folder must not widen a delete: forget the row, never delete the object.
        return
    _storage.delete_uri(uri)
