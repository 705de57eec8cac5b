"""The ``modelyard.plugins`` entry point: registers the Trainer integration without importing transformers.

pluggy imports every entry-point module when plugins are discovered, so this module imports only modelyard's
public hook markers and names the callback as a lazy ``"module:Class"`` string.
"""

from __future__ import annotations

from collections.abc import Callable

from modelyard.hookspecs import hookimpl

CALLBACK = "modelyard_transformers._callback:ModelyardCallback"


@hookimpl
def modelyard_register_integrations(register: Callable[..., None]) -> None:
    """Register the ``transformers`` integration (its callback is imported on first use)."""
    register("transformers", CALLBACK, framework="transformers", package="modelyard-transformers")
