"""modelyard for Keras 3: ``model.fit(x, y, callbacks=[ModelyardCallback(class_names=names)])``.

Importing this package imports neither Keras nor a backend (the entry point stays import-light):
``ModelyardCallback`` is imported on first use.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from ._weights import load_model, load_weights

if TYPE_CHECKING:
    from ._callback import ModelyardCallback

try:
    __version__ = version("modelyard-keras")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

__all__ = ["ModelyardCallback", "__version__", "load_model", "load_weights"]


def __getattr__(name: str) -> Any:
    if name == "ModelyardCallback":
        from ._callback import ModelyardCallback

        return ModelyardCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
