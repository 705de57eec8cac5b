"""Import Keras 3 once, with errors that say what to install or configure."""

from __future__ import annotations

import os
from typing import Any

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

    Keras's distribution API (``keras.distribution.initialize``) runs multi-process on the jax backend,
    where the process id it sets is ``jax.process_index()``. Elsewhere the id Keras documents is the
    ``KERAS_DISTRIBUTION_PROCESS_ID`` environment variable; on the torch backend an initialized
    ``torch.distributed`` process group's rank is honoured too.
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
