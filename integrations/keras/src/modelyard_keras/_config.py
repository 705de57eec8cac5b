"""The run's configuration (architecture, compile settings, fit parameters) as a JSON-safe mapping."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._keras import import_keras

_MAX_DEPTH = 60
_MAX_ARRAY = 1000
_MAX_TEXT = 200


def _text(value: str) -> str:
    # Lone surrogates cannot be stored as UTF-8; replace them rather than refuse the whole config.
    return value.encode("utf-8", "replace").decode("utf-8")


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not stop training
        text = f"<{type(value).__name__}>"
    return _text(text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "...")


def json_safe(value: Any, *, _depth: int = 0, _active: set[int] | None = None) -> Any:
    """Return ``value`` as plain JSON values, never failing.

    Tuples and sets become lists, numpy scalars Python scalars, small numpy arrays lists, NaN and infinity the
    strings ``"nan"``/``"inf"``/``"-inf"``, Keras objects their serialized config, and anything else its
    (shortened) ``repr``: a configuration is a record for people, and must never stop training.
    """
    active = set() if _active is None else _active
    if _depth > _MAX_DEPTH:
        return "<nested too deep>"
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, np.generic):
        return json_safe(value.item(), _depth=_depth + 1, _active=active) if value.dtype.kind in "biuf" \
            else _short_repr(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf" and value.size <= _MAX_ARRAY:
            return json_safe(value.tolist(), _depth=_depth + 1, _active=active)
        return f"<array shape={value.shape} dtype={value.dtype}>"
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        if id(value) in active:
            return "<circular reference>"
        active.add(id(value))
        try:
            if isinstance(value, Mapping):
                return {_text(str(k)): json_safe(v, _depth=_depth + 1, _active=active)
                        for k, v in value.items()}
            items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
            return [json_safe(v, _depth=_depth + 1, _active=active) for v in items]
        finally:
            active.discard(id(value))
    keras = import_keras()
    try:
        serialized = keras.saving.serialize_keras_object(value)
    except Exception:  # not a Keras object (or one that cannot serialize itself): keep a readable trace
        return _short_repr(value)
    if serialized is value:
        return _short_repr(value)
    return json_safe(serialized, _depth=_depth + 1, _active=active)


def _guarded(what: str, fn: Any) -> Any:
    try:
        return fn()
    except Exception as e:  # subclassed models may not implement get_config: record why, keep training
        return {"error": f"{what} failed: {type(e).__name__}: {_short_repr(str(e))}"}


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
