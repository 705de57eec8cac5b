"""What this integration reads from Keras: the module itself (Keras 3 checked), the process index, the config."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import modelyard
from modelyard import MissingDependencyError

_INSTALL = "install it with `pip install modelyard-keras` (which pulls `keras>=3`)"


def import_keras() -> Any:
    """Return the ``keras`` module, checking that it is Keras 3.

    Raises:
        MissingDependencyError: Keras is missing, is Keras 2, or its configured backend is not installed.
    """
    try:
        import keras
    except ImportError as e:
        missing = getattr(e, "name", None) or ""
        if missing and missing.split(".")[0] in ("tensorflow", "jax", "torch"):
            backend = os.environ.get("KERAS_BACKEND") or "the one in ~/.keras/keras.json"
            raise MissingDependencyError(
                f"Keras could not load its backend ({backend}): {e}. modelyard-keras never needs TensorFlow; "
                "install the backend you want and select it with the KERAS_BACKEND environment variable, "
                "for example `KERAS_BACKEND=torch` (or `jax`), before Keras is first imported.") from e
        raise MissingDependencyError(f"modelyard_keras needs Keras 3; {_INSTALL}.") from e
    major = str(getattr(keras, "__version__", "0")).split(".", 1)[0]
    if not major.isdigit() or int(major) < 3:
        raise MissingDependencyError(
            f"modelyard_keras needs Keras 3, found keras {getattr(keras, '__version__', '?')}; {_INSTALL}.")
    return keras


def process_index(keras: Any) -> int:
    """Return this process's index in a multi-process run (0 for the chief, and for a single process).

    ``jax.process_index()`` on jax (Keras's distribution API), an initialized ``torch.distributed`` rank on
    torch, else the ``KERAS_DISTRIBUTION_PROCESS_ID`` environment variable Keras documents.
    """
    backend = str(keras.backend.backend())
    if backend == "jax":
        import jax  # already imported by the jax backend

        return int(jax.process_index())
    if backend == "torch":
        import torch.distributed  # already imported by the torch backend

        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return int(torch.distributed.get_rank())
    value = os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID", "").strip()
    return int(value) if value.isdigit() else 0


def json_safe(value: Any) -> Any:
    """Return ``value`` as plain JSON values, never failing: :func:`modelyard.json_safe`, Keras objects as configs."""
    return modelyard.json_safe(value, fallback=lambda v: import_keras().saving.serialize_keras_object(v))


def _guarded(what: str, fn: Any) -> Any:
    try:
        return fn()
    except Exception as e:  # subclassed models may not implement get_config: record why, keep training
        return {"error": f"{what} failed: {type(e).__name__}: {json_safe(str(e))[:200]}"}


def run_config(model: Any, params: Mapping[str, Any] | None, callback: Mapping[str, Any]) -> dict[str, Any]:
    """Collect what describes a ``fit`` (JSON-safe): Keras, backend, architecture, compile and fit settings."""
    keras = import_keras()
    compile_config = _guarded("model.get_compile_config()", model.get_compile_config)
    if compile_config is None and getattr(model, "optimizer", None) is not None:
        compile_config = {"optimizer": _guarded("optimizer.get_config()", model.optimizer.get_config)}
    return dict(json_safe({
        "framework": "keras", "keras_version": str(keras.__version__), "backend": str(keras.backend.backend()),
        "model": {"class_name": type(model).__name__, "module": type(model).__module__, "name": str(model.name),
                  "config": _guarded("model.get_config()", model.get_config)},
        "compile": compile_config, "fit": dict(params or {}), "callback": dict(callback)}))
