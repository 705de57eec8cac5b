"""The run's configuration (architecture, compile settings, fit parameters) as a JSON-safe mapping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelyard import json_safe as modelyard_json_safe

from ._keras import import_keras


def _serialize(value: Any) -> Any:
    """Return a Keras object (layer, optimizer, loss) as its serialized config."""
    return import_keras().saving.serialize_keras_object(value)


def json_safe(value: Any) -> Any:
    """Return ``value`` as plain JSON values, never failing: :func:`modelyard.json_safe`, Keras objects as configs."""
    return modelyard_json_safe(value, fallback=_serialize)


def _guarded(what: str, fn: Any) -> Any:
    try:
        return fn()
    except Exception as e:  # subclassed models may not implement get_config: record why, keep training
        return {"error": f"{what} failed: {type(e).__name__}: {json_safe(str(e))[:200]}"}


def run_config(model: Any, params: Mapping[str, Any] | None, callback: Mapping[str, Any]) -> dict[str, Any]:
    """Collect what describes a ``fit``: architecture, compile configuration, fit parameters.

    Args:
        model: The Keras model being fitted.
        params: The callback's ``self.params`` (``epochs``, ``steps``, ``verbose``).
        callback: The callback's own settings.

    Returns:
        A JSON-safe mapping with keys ``framework``, ``keras_version``, ``backend``, ``model``, ``compile``,
        ``fit`` and ``callback``.
    """
    keras = import_keras()
    architecture = {
        "class_name": type(model).__name__,
        "module": type(model).__module__,
        "name": str(model.name),
        "config": _guarded("model.get_config()", model.get_config),
    }
    compile_config = _guarded("model.get_compile_config()", model.get_compile_config)
    if compile_config is None and getattr(model, "optimizer", None) is not None:
        compile_config = {"optimizer": _guarded("optimizer.get_config()", model.optimizer.get_config)}
    config = {
        "framework": "keras",
        "keras_version": str(keras.__version__),
        "backend": str(keras.backend.backend()),
        "model": architecture,
        "compile": compile_config,
        "fit": dict(params or {}),
        "callback": dict(callback),
    }
    return dict(json_safe(config))
