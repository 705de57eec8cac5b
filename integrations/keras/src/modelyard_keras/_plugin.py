"""The ``modelyard.plugins`` entry-point target: registers the Keras integration, importing no Keras.

pluggy imports every entry-point module when modelyard discovers plugins, in every process that uses
modelyard, so this module imports only :mod:`modelyard.hookspecs` and names the callback by a lazy
``"module:Class"`` string, imported when :func:`modelyard.get_callback_class` first asks for it.
"""

from __future__ import annotations

from modelyard.hookspecs import RegisterIntegration, hookimpl

CALLBACK = "modelyard_keras._callback:ModelyardCallback"


@hookimpl
def modelyard_register_integrations(register: RegisterIntegration) -> None:
    """Register the ``keras`` integration."""
    register("keras", CALLBACK, framework="keras", package="modelyard-keras")
