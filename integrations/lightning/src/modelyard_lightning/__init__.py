"""modelyard for PyTorch Lightning: ``L.Trainer(callbacks=[ModelyardCallback()])`` records every checkpoint.

For the standalone ``pytorch_lightning`` package use ``modelyard_lightning.pytorch_lightning.ModelyardCallback``.
``ModelyardCallback`` is imported on first use: the read helpers work without ``lightning`` installed.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from ._read import checkpoint_path, load_weights

if TYPE_CHECKING:
    from ._callback import ModelyardCallback

try:
    __version__ = version("modelyard-lightning")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

__all__ = ["ModelyardCallback", "__version__", "checkpoint_path", "load_weights"]


def __getattr__(name: str) -> Any:
    if name == "ModelyardCallback":
        from ._callback import ModelyardCallback

        return ModelyardCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
