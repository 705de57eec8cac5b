"""``ModelyardCallback`` for ``lightning.pytorch`` (``import lightning``), on that namespace's Callback."""

from __future__ import annotations

from modelyard import MissingDependencyError

from ._impl import ModelyardCallbackImpl

try:
    from lightning.pytorch.callbacks import Callback
except ImportError as e:
    raise MissingDependencyError(
        "modelyard_lightning.ModelyardCallback needs the `lightning` package: install it with `pip install "
        "modelyard-lightning` (or `pip install lightning`). Using the standalone `pytorch_lightning` package "
        "instead? Import `modelyard_lightning.pytorch_lightning.ModelyardCallback`."
    ) from e

__all__ = ["ModelyardCallback"]


class ModelyardCallback(ModelyardCallbackImpl, Callback):
    """Record every checkpoint of a ``lightning.pytorch`` run in modelyard (see ``ModelyardCallbackImpl``)."""

    __doc__ = ModelyardCallbackImpl.__doc__
    namespace = "lightning.pytorch"
