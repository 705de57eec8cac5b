"""modelyard for the Hugging Face ``Trainer``: every checkpoint, the model config and labels, in the registry.

Example:
    >>> from modelyard_transformers import ModelyardCallback
    >>> trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[ModelyardCallback()])
    >>> trainer.train()
    >>> model = from_registry(AutoModelForSequenceClassification, model_id)
    >>> trainer.train(resume_from_checkpoint=checkpoint_path(model_id))

Importing this package does not import transformers or torch: :class:`ModelyardCallback` (which subclasses
``transformers.TrainerCallback``) is imported on first access, so the ``modelyard.plugins`` entry point stays
import-light.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from ._loading import checkpoint_path, from_registry

if TYPE_CHECKING:
    from ._callback import ModelyardCallback

try:
    __version__ = version("modelyard-transformers")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

__all__ = ["ModelyardCallback", "__version__", "checkpoint_path", "from_registry"]


def __getattr__(name: str) -> Any:
    # PEP 562: ``ModelyardCallback`` needs transformers, so it is imported only when asked for.
    if name == "ModelyardCallback":
        from ._callback import ModelyardCallback

        return ModelyardCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
