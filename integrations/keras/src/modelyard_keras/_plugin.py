"""The ``modelyard.plugins`` entry-point target: names the callback as ``"module:Class"``, imports no Keras."""

from __future__ import annotations

from modelyard.hookspecs import RegisterIntegration, hookimpl

CALLBACK = "modelyard_keras._callback:ModelyardCallback"


@hookimpl
def modelyard_register_integrations(register: RegisterIntegration) -> None:
    """Register the ``keras`` integration."""
    register("keras", CALLBACK, framework="keras", package="modelyard-keras")
