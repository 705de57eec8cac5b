"""The ``modelyard.plugins`` entry-point target: names the callbacks as ``"module:Class"``, imports no framework."""

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
