"""The layout of modelyard's objects below a destination: the one owner of every object key.

A version's object lives at::

    <destination>/<project>/<task name>.<task id>/models/<model id>/<version>/<file name>

and a folder package's members and manifest below that folder::

    <version folder>/<file name>/<member path>        (each component made safe)
    <version folder>/<file name>/modelyard-manifest.json

Every component is made safe by :func:`safe_component`, so a user string never chooses a path outside the
destination (RELIABILITY.md invariant 10). Code that writes, reads, audits or deletes objects builds and
parses keys only through this module.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from modelyard._errors import DestinationError
from modelyard._manifest import MANIFEST_NAME

from .uris import normalize_destination

__all__ = ["MANIFEST_NAME", "OWNED_KEY", "manifest_uri", "member_uri", "object_uri", "owned_key_model",
           "owning_model", "package_key", "safe_component", "version_folder"]

_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_.\-]+")

#: A key below a destination in modelyard's own layout: project / task / "models" / model id / version / file.
OWNED_KEY = re.compile(r"^[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+/models/(?P<model>[A-Za-z0-9_.\-]+)/[0-9]+/.+$")


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


def member_uri(package_uri: str, relative_path: str) -> str:
    """Return the URI of a folder package's member (a validated manifest path) below the package's URI."""
    return f"{package_uri.rstrip('/')}/{package_key(relative_path)}"


def manifest_uri(package_uri: str) -> str:
    """Return the URI of a folder package's manifest."""
    return f"{package_uri.rstrip('/')}/{MANIFEST_NAME}"


def version_folder(uri: str) -> str:
    """Return the version folder holding a version's object (or folder package)."""
    return uri.rstrip("/").rsplit("/", 1)[0]


def owned_key_model(key: str) -> str | None:
    """Return the model id of a key relative to a destination when it is in modelyard's layout, else ``None``."""
    match = OWNED_KEY.match(key)
    return match["model"] if match else None


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
        if uri.startswith(prefix) and (model := owned_key_model(uri[len(prefix):])):
            return model
    return None
