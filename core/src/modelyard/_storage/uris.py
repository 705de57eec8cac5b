"""Storage URIs: parsing, canonical destinations, fsspec filesystems, and confinement of stored URIs.

Every URI read back from the registry is checked against the destinations this registry wrote to before any
read or delete (RELIABILITY.md S9). Other storage modules reach fsspec only through :func:`filesystem`
(looked up on this module at call time), so one place decides which implementation serves a scheme.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable

import fsspec

from modelyard._errors import DestinationError, MissingDependencyError

__all__ = ["check_confined", "filesystem", "is_local", "is_writable", "join_uri", "normalize_destination",
           "split_uri"]

#: The fsspec protocol behind each URI scheme users write.
_SCHEME_ALIASES = {"azure": "az", "abfs": "abfs", "az": "az", "gs": "gs", "gcs": "gs", "s3": "s3", "s3a": "s3"}
#: The package to install for each scheme that needs one.
_INSTALL_HINTS = {"s3": "modelyard[s3]", "gs": "modelyard[gcs]", "az": "modelyard[azure]", "abfs": "modelyard[azure]"}


def split_uri(uri: str) -> tuple[str, str]:
    """Split a URI (or a local path) into an fsspec protocol and path.

    Raises:
        DestinationError: The URI has a scheme but no path.
    """
    if "://" not in uri:
        return "file", os.path.abspath(os.path.expanduser(uri))
    scheme, rest = uri.split("://", 1)
    scheme = scheme.lower()
    if scheme == "file":
        return "file", os.path.abspath(rest) if rest else ""
    protocol = _SCHEME_ALIASES.get(scheme, scheme)
    if not rest:
        raise DestinationError(f"destination {uri!r} has no bucket or path")
    return protocol, rest


def join_uri(protocol: str, path: str) -> str:
    """Build the canonical URI for an fsspec protocol and path."""
    if protocol == "file":
        return "file://" + path
    scheme = {"az": "azure"}.get(protocol, protocol)
    return f"{scheme}://{path}"


def normalize_destination(uri: str) -> str:
    """Return the canonical form of a destination root: absolute, with a scheme, no trailing slash."""
    if not isinstance(uri, str) or not uri.strip():
        raise DestinationError(f"a destination must be a non-empty string, got {uri!r}")
    if "\x00" in uri:
        raise DestinationError("a destination must not contain NUL characters")
    protocol, path = split_uri(uri.strip())
    path = path.rstrip("/") or "/"
    return join_uri(protocol, path)


def filesystem(protocol: str) -> fsspec.AbstractFileSystem:
    """Return the fsspec filesystem for a protocol.

    Raises:
        MissingDependencyError: The protocol's implementation is not installed (names the package).
        DestinationError: No fsspec implementation knows the protocol.
    """
    try:
        return fsspec.filesystem(protocol)
    except ImportError as e:
        hint = _INSTALL_HINTS.get(protocol)
        extra = f" Install it with `pip install '{hint}'`." if hint else ""
        raise MissingDependencyError(f"storage scheme {protocol!r} needs a package that is not installed: "
                                     f"{e}.{extra}") from e
    except ValueError as e:
        raise DestinationError(f"no fsspec implementation for the storage scheme {protocol!r}: {e}") from e


def is_local(protocol: str) -> bool:
    """Tell whether a protocol is the local filesystem."""
    return protocol in ("file", "local")

_FORBIDDEN_IN_STORED = re.compile(r"[?#;%\\\x00-\x1f\x7f]")


def check_confined(uri: str, allowed: Iterable[str]) -> None:
    """Refuse a stored URI unless it lies inside a destination this registry wrote to (S9).

    The URI is normalised once and never decoded: it must already be in the canonical form modelyard writes
    (a scheme, an absolute path, no trailing slash), and below the destination query strings, fragments,
    ``;`` parameters, ``%`` escapes, backslashes, control characters and empty, ``.`` or ``..`` segments are
    refused. Destination roots are compared in canonical form too, so a root recorded with a trailing slash
    or as a plain path neither widens nor breaks the check. On the local filesystem the resolved path must
    stay below the resolved root, so a symlink planted inside a destination cannot lead outside it.

    Raises:
        DestinationError: The URI is outside every allowed destination or uses a refused construct.
    """
    if not isinstance(uri, str) or not uri:
        raise DestinationError(f"stored URI {uri!r} is not a string; the registry row may be corrupt")
    try:
        canonical = normalize_destination(uri) if "://" in uri else None
    except DestinationError:
        canonical = None
    if canonical != uri:
        raise DestinationError(f"stored URI {uri!r} is not in the canonical form modelyard writes; refusing "
                               "to read it (was the registry row changed by hand?)")
    for recorded in allowed:
        try:
            root = normalize_destination(recorded)
        except DestinationError:
            continue  # a malformed destination row confines nothing
        if uri == root:
            return
        prefix = root if root.endswith("/") else root + "/"
        if not uri.startswith(prefix):
            continue
        rest = uri[len(prefix):]
        if _FORBIDDEN_IN_STORED.search(rest) or any(s in ("", ".", "..") for s in rest.split("/")):
            raise DestinationError(
                f"stored URI {uri!r} uses a refused construct below {root!r}; refusing to read it")
        protocol, path = split_uri(uri)
        if is_local(protocol):
            real_root = os.path.realpath(split_uri(root)[1])
            if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
                raise DestinationError(f"stored URI {uri!r} resolves outside {root!r} through a symlink; "
                                       "refusing to read it")
        return
    raise DestinationError(
        f"stored URI {uri!r} is outside every destination this registry wrote to; refusing to read it "
        "(was the registry row changed by hand?)")


def is_writable(destination: str) -> bool:
    """Tell whether a destination's scheme is installed and a small probe object can be written there."""
    try:
        protocol, path = split_uri(destination)
        fs = filesystem(protocol)
        probe = f"{path.rstrip('/')}/.modelyard-probe-{uuid.uuid4().hex}"
        if is_local(protocol):
            os.makedirs(path, exist_ok=True)
        with fs.open(probe, "wb") as f:
            f.write(b"ok")
        fs.rm(probe)
        return True
    except Exception:  # noqa: BLE001 - the documented contract is a boolean answer, not an error
        return False

