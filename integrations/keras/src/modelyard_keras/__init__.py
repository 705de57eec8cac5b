"""modelyard for Keras 3: capture ``model.fit`` checkpoints, config and labels into the modelyard registry.

Example:
    >>> from modelyard_keras import ModelyardCallback
    >>> model.fit(x, y, validation_split=0.2,
    ...           callbacks=[ModelyardCallback(class_names=["cat", "dog"], keep_top_k=3)])

Importing this package imports neither Keras nor any backend: ``modelyard`` discovers the integration through
its ``modelyard.plugins`` entry point at start-up, and the names below are resolved on first use.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._callback import ModelyardCallback
    from ._loading import load_model, load_weights

try:
    __version__ = version("modelyard-keras")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

# Public name -> the private module defining it. Resolved lazily so that the entry point stays import-light.
_LAZY = {
    "ModelyardCallback": "._callback",
    "load_model": "._loading",
    "load_weights": "._loading",
}

__all__ = ["ModelyardCallback", "__version__", "load_model", "load_weights"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
