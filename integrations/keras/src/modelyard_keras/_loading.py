"""The read side: put a recorded checkpoint back into a Keras model, without unpickling anything."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelyard import FormatError, InvalidArgumentError, Model, sniff_format
from modelyard import load_weights as load_tensors

from ._keras import import_keras
from ._weights import ARCHIVE_FILE, WEIGHTS_FILE, assign_weights, read_order


def _local_file(model_id: str, version: int | None, name: str) -> Path:
    """Download (verified, cached) one file of a version: a package member, or the version's single file."""
    record = Model(model_id)
    path = Path(str(record.get_weights(raise_on_error=True, version=version)))
    if path.is_dir():
        member = path / name
        if not member.is_file():
            which = f"version {version}" if version is not None else "the newest version"
            raise InvalidArgumentError(
                f"{which} of model {model_id} ({record.name!r}) has no {name}"
                + (" (it was recorded with save_weights_only=True; use load_weights() on a model you "
                   "build yourself)" if name == ARCHIVE_FILE else "") + ".")
        return member
    return path


def load_weights(model: Any, model_id: str, version: int | None = None) -> Any:
    """Load a recorded checkpoint's ``model.safetensors`` into a built Keras model, by variable path.

    The file's format is checked from its bytes (safetensors only: nothing is unpickled), every key and
    shape is checked against the model before any variable changes, and each variable is assigned the
    array stored under its Keras path. A model built again in the same process, whose layers Keras numbered
    differently (``dense_2`` for ``dense``), is matched by position when everything else agrees.

    Args:
        model: A built Keras model with the trained model's architecture.
        model_id: The modelyard model id (``ModelyardCallback.model_id``).
        version: The version number (default: the newest ready one; ``Model(id).versions`` lists them, and
            their ``best``/``last`` tags).

    Returns:
        ``model``, for chaining.

    Raises:
        NotFoundError: No such model or version, or no ready version yet.
        FormatError: The stored file is not a well-formed safetensors file.
        InvalidArgumentError: The model is not built, or keys or shapes differ.
        IntegrityError: The stored bytes fail verification.
    """
    path = _local_file(model_id, version, WEIGHTS_FILE)
    fmt = sniff_format(path)
    if fmt != "safetensors":
        raise FormatError(f"{path.name} of model {model_id} is {fmt}, not safetensors; it was not loaded.")
    tensors: Mapping[str, Any] = load_tensors(path)
    assign_weights(model, tensors, source=f"model {model_id}'s {WEIGHTS_FILE}", order=read_order(path))
    return model


def load_model(model_id: str, version: int | None = None, *, custom_objects: Mapping[str, Any] | None = None,
               compile: bool = True) -> Any:
    """Load a recorded checkpoint's full ``model.keras`` archive with Keras's ``safe_mode=True``.

    Safe mode refuses archives whose config would run code (``Lambda`` layers with bytecode); there is no way
    to turn it off here. Custom layers must be registered (``@keras.saving.register_keras_serializable()``) or
    passed as ``custom_objects``.

    Args:
        model_id: The modelyard model id.
        version: The version number (default: the newest ready one).
        custom_objects: Custom classes and functions the archive refers to.
        compile: Compile the model with its recorded compile configuration.

    Returns:
        The Keras model.

    Raises:
        NotFoundError: No such model or version, or no ready version yet.
        InvalidArgumentError: The version holds no ``model.keras`` (``save_weights_only=True``).
        FormatError: The stored file is not a Keras archive.
        IntegrityError: The stored bytes fail verification.
    """
    keras = import_keras()
    path = _local_file(model_id, version, ARCHIVE_FILE)
    fmt = sniff_format(path)
    if fmt != "keras":
        raise FormatError(f"{path.name} of model {model_id} is {fmt}, not a Keras archive; it was not "
                          "loaded.")
    return keras.saving.load_model(path, custom_objects=dict(custom_objects) if custom_objects else None,
                                   compile=compile, safe_mode=True)
