"""Reset modelyard's process-wide state so each test starts from a fresh registry and plugin manager."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modelyard import _plugins, _registry, _uploads
from modelyard._output_model import OutputModel
from modelyard._task import Task


def reset_state(*, plugins: _plugins.PluginManager | None = None) -> None:
    """Drain pending uploads, forget cached registries, the current task and the default upload URI.

    Args:
        plugins: The plugin manager to install (default: a fresh one that discovers entry points).
    """
    _uploads.reset_engine()
    _registry.reset_registries()
    Task._current = None
    OutputModel._default_upload_uri = None
    _plugins.set_plugin_manager(plugins or _plugins.PluginManager())


@contextmanager
def isolated_state(home: str | os.PathLike[str], *, registry_url: str | None = None) -> Iterator[Path]:
    """Run a block against a fresh ``MODELYARD_HOME`` (and optionally a registry URL), then restore.

    Args:
        home: The folder to use as ``MODELYARD_HOME``.
        registry_url: A registry URL (default: the embedded SQLite file under ``home``).
    """
    saved = {k: os.environ.get(k) for k in ("MODELYARD_HOME", "MODELYARD_REGISTRY_URL",
                                            "MODELYARD_DEFAULT_OUTPUT_URI")}
    os.environ["MODELYARD_HOME"] = str(home)
    os.environ.pop("MODELYARD_DEFAULT_OUTPUT_URI", None)
    if registry_url:
        os.environ["MODELYARD_REGISTRY_URL"] = registry_url
    else:
        os.environ.pop("MODELYARD_REGISTRY_URL", None)
    reset_state()
    try:
        yield Path(home)
    finally:
        reset_state()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
