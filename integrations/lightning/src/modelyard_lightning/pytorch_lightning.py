"""``ModelyardCallback`` for the standalone ``pytorch_lightning`` package (``pl.Trainer(callbacks=[...])``)."""

from __future__ import annotations

from modelyard import MissingDependencyError

from ._impl import ModelyardCallbackImpl

try:
    from pytorch_lightning.callbacks import Callback
except ImportError as e:
    raise MissingDependencyError(
        "modelyard_lightning.pytorch_lightning needs the `pytorch_lightning` package: install it with "
        "`pip install modelyard-lightning[pytorch-lightning]`. Using `import lightning` instead? Import "
        "`modelyard_lightning.ModelyardCallback`."
    ) from e

__all__ = ["ModelyardCallback"]


class ModelyardCallback(ModelyardCallbackImpl, Callback):
    """Record every checkpoint of a ``pytorch_lightning`` run in modelyard (see ``ModelyardCallbackImpl``)."""

    __doc__ = ModelyardCallbackImpl.__doc__
    namespace = "pytorch_lightning"
