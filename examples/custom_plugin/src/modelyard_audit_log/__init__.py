"""An example modelyard plugin: an append-only JSON-lines audit log of model versions.

Installed, it is found through the ``modelyard.plugins`` entry point; modelyard calls its hooks for every
model, whatever the framework that produced it. Upload hooks run in modelyard's upload worker threads, so
writes are serialised by a lock and each event is one ``write`` of one line to a file opened for appending.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from modelyard.hookspecs import hookimpl

if TYPE_CHECKING:  # the module is imported at discovery: keep it to the standard library at run time
    from modelyard import Model, ModelVersion, UploadError

_lock = threading.Lock()


def log_path() -> Path:
    """Return the audit log: ``$MODELYARD_AUDIT_LOG``, else ``$MODELYARD_HOME/audit.log``."""
    explicit = os.environ.get("MODELYARD_AUDIT_LOG")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("MODELYARD_HOME") or Path.home() / ".modelyard") / "audit.log"


def _write(event: str, **fields: object) -> None:
    line = json.dumps({"time": time.time(), "event": event, **fields}, sort_keys=True) + "\n"
    path = log_path()
    with _lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(line)


@hookimpl
def modelyard_after_upload(version: ModelVersion) -> None:
    """Record a version that became durable and ready."""
    _write("version_ready", model_id=version.model_id, version=version.version, iteration=version.iteration,
           file_name=version.file_name, size=version.size, sha256=version.sha256, uri=version.uri)


@hookimpl
def modelyard_on_upload_error(version: ModelVersion, error: UploadError) -> None:
    """Record a failed upload."""
    _write("upload_failed", model_id=version.model_id, version=version.version, error=str(error))


@hookimpl
def modelyard_after_publish(model: Model) -> None:
    """Record a publication."""
    _write("published", model_id=model.id, name=model.name)
