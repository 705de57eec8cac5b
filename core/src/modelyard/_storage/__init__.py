"""The storage layer: where modelyard's bytes live, how they get there, and how they come back verified.

One concept per module; this package re-exports the names the layers above use, so callers write
``_storage.upload_file(...)`` without knowing which module holds it:

- :mod:`.uris`: URI parsing, canonical destinations, fsspec filesystems, confinement of stored URIs (S9).
- :mod:`.layout`: the one owner of the object-key layout and of package member and manifest keys.
- :mod:`.transfer`: streaming uploads with atomic commit, verified downloads, deletes (fsspec I/O).
- :mod:`.cache`: the shared, content-addressed download cache, and fetching folder packages into it.
- :mod:`.snapshots`: protecting a caller's file while its upload runs.

Inside the package, modules reach one another through module attributes (``uris.filesystem(...)``), so a
test that replaces a function on its module sees every call.
"""

from __future__ import annotations

from .cache import cache_root, cached_download, check_digest, copy_tree, download_package, fetch_package
from .layout import (
    MANIFEST_NAME,
    OWNED_KEY,
    manifest_uri,
    member_uri,
    object_uri,
    owned_key_model,
    owning_model,
    package_key,
    safe_component,
    version_folder,
)
from .snapshots import reflink_or_copy, snapshot_file
from .transfer import (
    CHUNK,
    MAX_PARTS,
    MIN_PART,
    StopRequested,
    Transfer,
    choose_part_size,
    delete_uri,
    download_verified,
    hash_object,
    object_size,
    put_bytes,
    remove_partials,
    upload_file,
)
from .uris import check_confined, filesystem, is_local, is_writable, join_uri, normalize_destination, split_uri

__all__ = [
    "CHUNK", "MANIFEST_NAME", "MAX_PARTS", "MIN_PART", "OWNED_KEY", "StopRequested", "Transfer", "cache_root",
    "cached_download", "check_confined", "check_digest", "choose_part_size", "copy_tree", "delete_uri",
    "download_package", "download_verified", "fetch_package", "filesystem", "hash_object", "is_local",
    "is_writable", "join_uri", "manifest_uri", "member_uri", "normalize_destination", "object_size",
    "object_uri", "owned_key_model", "owning_model", "package_key", "put_bytes", "reflink_or_copy",
    "remove_partials", "safe_component", "snapshot_file", "split_uri", "upload_file", "version_folder",
]
