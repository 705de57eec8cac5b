"""The ``modelyard.plugins`` entry-point target: makes the Lightning integration known, imports no framework.

pluggy imports this module when modelyard first lists or looks up integrations, so it imports only
:mod:`modelyard.hookspecs` and names the callback classes as ``"module:Class"`` strings, imported on first use
by :func:`modelyard.get_callback_class`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard.hookspecs import hookimpl

if TYPE_CHECKING:
    from modelyard.hookspecs import RegisterIntegration

PACKAGE = "modelyard-lightning"


@hookimpl
def modelyard_register_integrations(register: RegisterIntegration) -> None:
    """Register ``lightning`` (``lightning.pytorch``) and ``pytorch_lightning`` (the standalone package)."""
    register("lightning", "modelyard_lightning._callback:ModelyardCallback", framework="lightning",
             package=PACKAGE)
    register("pytorch_lightning", "modelyard_lightning.pytorch_lightning:ModelyardCallback",
             framework="pytorch_lightning", package=PACKAGE)
