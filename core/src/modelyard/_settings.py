"""Environment-driven settings, read at use time so tests and users can change them per process."""

from __future__ import annotations

import os
import socket
from pathlib import Path

#: Environment variables modelyard reads (documented in docs/configuration.md).
ENV_HOME = "MODELYARD_HOME"
ENV_REGISTRY_URL = "MODELYARD_REGISTRY_URL"
ENV_DEFAULT_OUTPUT_URI = "MODELYARD_DEFAULT_OUTPUT_URI"
ENV_EXIT_TIMEOUT = "MODELYARD_EXIT_TIMEOUT"
ENV_UPLOAD_WORKERS = "MODELYARD_UPLOAD_WORKERS"
ENV_MAX_PENDING = "MODELYARD_MAX_PENDING_UPLOADS"
ENV_PART_SIZE = "MODELYARD_PART_SIZE"
ENV_DISABLE_PLUGINS = "MODELYARD_DISABLE_PLUGINS"
ENV_RETRY_DEADLINE = "MODELYARD_RETRY_DEADLINE"


def home() -> Path:
    """Return the modelyard home folder (``MODELYARD_HOME``, default ``~/.modelyard``), creating it."""
    path = Path(os.environ.get(ENV_HOME) or Path.home() / ".modelyard").expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as e:
        from ._errors import InvalidArgumentError

        raise InvalidArgumentError(
            f"{ENV_HOME}={str(path)!r} is not a folder ({e.strerror}): point {ENV_HOME} at a folder (it is "
            "created if missing) or unset it to use ~/.modelyard") from e
    return path


def registry_url() -> str:
    """Return the SQLAlchemy URL of the registry (``MODELYARD_REGISTRY_URL`` or the embedded SQLite file)."""
    url = os.environ.get(ENV_REGISTRY_URL)
    if url:
        return url
    return f"sqlite:///{home() / 'registry.db'}"


def default_storage_uri() -> str:
    """Return the last-resort destination: ``$MODELYARD_HOME/storage``."""
    path = home() / "storage"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def _number(name: str, default: float | None, minimum: float) -> float | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as e:
        raise ValueError(f"{name}={raw!r} is not a number; unset it or give a number >= {minimum}") from e
    if value < minimum:
        raise ValueError(f"{name}={raw!r} must be >= {minimum}")
    return value


def exit_timeout() -> float | None:
    """Return how long a clean interpreter exit waits for pending uploads (``None``: until done)."""
    return _number(ENV_EXIT_TIMEOUT, None, 0)


def upload_workers() -> int:
    """Return the number of concurrent upload workers (``MODELYARD_UPLOAD_WORKERS``, default 4)."""
    return int(_number(ENV_UPLOAD_WORKERS, 4, 1) or 4)


def max_pending_uploads() -> int:
    """Return how many versions may wait for upload before ``update_weights`` applies backpressure."""
    return int(_number(ENV_MAX_PENDING, 64, 1) or 64)


def part_size() -> int | None:
    """Return a fixed multipart part size in bytes, or ``None`` to size parts from the file size."""
    value = _number(ENV_PART_SIZE, None, 5 * 1024 * 1024)
    return int(value) if value is not None else None


def retry_deadline() -> float:
    """Return the number of seconds transient storage errors are retried before a version fails."""
    return float(_number(ENV_RETRY_DEADLINE, 120.0, 0) or 0.0)


def disabled_plugins() -> set[str]:
    """Return the plugin names listed in ``MODELYARD_DISABLE_PLUGINS`` (comma separated)."""
    raw = os.environ.get(ENV_DISABLE_PLUGINS, "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def hostname() -> str:
    """Return this machine's name, used to decide which journaled uploads this machine may resume."""
    return socket.gethostname()
