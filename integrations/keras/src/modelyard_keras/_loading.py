"""The read side: put a recorded checkpoint back into a Keras model, without unpickling anything."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelyard import FormatError, sniff_format, version_file
from modelyard import load_weights as load_tensors

from ._keras import import_keras
from ._weights import ARCHIVE_FILE, WEIGHTS_FILE, assign_weights, read_order


def load_weights(model: Any, model_id: str, version: int | str | None = None) -> Any:
    """Load a recorded checkpoint's ``model.safetensors`` into a built Keras model, by variable path.

    Safetensors only (the format is read from the bytes); every key and shape is checked before any variable
    changes (see :func:`assign_weights`).

    Args:
        model: A built Keras model with the trained model's architecture.
        model_id: The modelyard model id (``ModelyardCallback.model_id``).
        version: A version number, ``"best"`` or ``"last"``, or ``None``: the newest ready version.

    Returns:
        ``model``, for chaining.

    Raises:
        NotFoundError: No such model, version or file, or no ready version yet.
        FormatError: Not a well-formed safetensors file. IntegrityError: The bytes fail verification.
        InvalidArgumentError: The model is not built, or keys or shapes differ.
    """
    path = version_file(model_id, version, WEIGHTS_FILE)
    if sniff_format(path) != "safetensors":
        raise FormatError(f"{path.name} of model {model_id} is {sniff_format(path)}, not safetensors; it was "
                          "not loaded.")
    assign_weights(model, load_tensors(path), source=f"model {model_id}'s {WEIGHTS_FILE}", order=read_order(path))
    return model


def load_model(model_id: str, version: int | str | None = None, *,
               custom_objects: Mapping[str, Any] | None = None, compile: bool = True) -> Any:
    """Load a recorded checkpoint's ``model.keras`` archive with Keras's ``safe_mode=True`` (always on).

    Safe mode refuses archives whose config would run code (``Lambda`` layers with bytecode). Custom layers
    must be registered (``@keras.saving.register_keras_serializable()``) or passed as ``custom_objects``.

    Args:
        model_id: The modelyard model id.
        version: A version number, ``"best"`` or ``"last"``, or ``None``: the newest ready version.
        custom_objects: Custom classes and functions the archive refers to.
        compile: Compile the model with its recorded compile configuration.

    Returns:
        The Keras model.

    Raises:
        NotFoundError: No such model or version, or no ``model.keras`` in it (``save_weights_only=True``).
        FormatError: Not a Keras archive. IntegrityError: The bytes fail verification.
    """
    path = version_file(model_id, version, ARCHIVE_FILE, hint=" (it was recorded with save_weights_only=True; use "
                        "load_weights() on a model you build yourself)")
    if sniff_format(path) != "keras":
        raise FormatError(f"{path.name} of model {model_id} is {sniff_format(path)}, not a Keras archive; it "
                          "was not loaded.")
    return import_keras().saving.load_model(path, custom_objects=dict(custom_objects) if custom_objects else None,
                                            compile=compile, safe_mode=True)
