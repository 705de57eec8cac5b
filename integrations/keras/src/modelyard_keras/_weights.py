"""Keras variables <-> safetensors tensors by Keras path (``dense/kernel``), both ways, never unpickling."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelyard import FormatError, InvalidArgumentError, save_safetensors, sniff_format, version_file
from modelyard import load_weights as load_tensors

from ._keras import import_keras

#: The file name of the weights inside every version this integration records.
WEIGHTS_FILE = "model.safetensors"
#: The file name of the full Keras archive inside a version (absent with ``save_weights_only=True``).
ARCHIVE_FILE = "model.keras"
#: safetensors header metadata key holding the keys in ``model.weights`` order (JSON list).
ORDER_KEY = "keras_paths"

# Keras numbers automatically named layers by creation order in the process ("dense", "dense_1", ...), so the
# same architecture built twice in one process gets other paths; this strips that numbering for comparison.
_AUTO_SUFFIX = re.compile(r"_\d+(?=/|$)")


def variable_keys(model: Any) -> list[tuple[str, Any]]:
    """Return ``(key, variable)`` for every weight in ``model.weights`` order; a repeated path gets ``#1``, ...

    Raises:
        InvalidArgumentError: A disambiguated key collides with a real path.
    """
    seen: dict[str, int] = {}
    out: list[tuple[str, Any]] = []
    for variable in model.weights:
        path = str(variable.path)
        count = seen.get(path, 0)
        seen[path] = count + 1
        out.append((f"{path}#{count}" if count else path, variable))
    keys = [k for k, _ in out]
    if len(set(keys)) != len(keys):
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        raise InvalidArgumentError(f"model {model.name!r} has variable paths that cannot be told apart "
                                   f"({repeated}); give its layers unique names.")
    return out


def save_weights(model: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``model``'s weights, on whichever backend Keras runs, to a safetensors file (atomically)."""
    keras = import_keras()
    # `variable.value` is the backend tensor: converting it directly skips the Variable's own __array__.
    # ml_dtypes types (bfloat16, float8_*, numpy kind "V") have no reader on the load side; float32 is exact.
    tensors = {key: np.asarray(keras.ops.convert_to_numpy(variable.value)) for key, variable in variable_keys(model)}
    tensors = {k: a.astype(np.float32) if a.dtype.kind == "V" else a for k, a in tensors.items()}
    metadata = {"format": "keras", "keras_version": str(keras.__version__),
                "backend": str(keras.backend.backend()), ORDER_KEY: json.dumps(list(tensors))}
    return save_safetensors(tensors, path, metadata=metadata)


def read_order(path: str | os.PathLike[str]) -> list[str] | None:
    """Return the key order :func:`save_weights` recorded (``None``: none); call on a validated file only."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        text = (f.metadata() or {}).get(ORDER_KEY)
    try:
        order = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return order if isinstance(order, list) and all(isinstance(k, str) for k in order) else None


def _by_position(expected: list[tuple[str, Any]], tensors: Mapping[str, np.ndarray],
                 order: Sequence[str] | None) -> dict[str, np.ndarray] | None:
    """Pair stored arrays with variables by position when only Keras's automatic layer numbering differs."""
    if order is None or len(order) != len(expected) or set(order) != set(tensors):
        return None
    pairs: dict[str, np.ndarray] = {}
    for (key, variable), stored in zip(expected, order, strict=True):
        if _AUTO_SUFFIX.sub("", key) != _AUTO_SUFFIX.sub("", stored) \
                or tuple(tensors[stored].shape) != tuple(variable.shape):
            return None
        pairs[key] = tensors[stored]
    return pairs


def assign_weights(model: Any, tensors: Mapping[str, np.ndarray], *, source: str,
                   order: Sequence[str] | None = None) -> None:
    """Assign arrays to ``model``'s variables by key, checking everything before changing anything.

    A model built again in one process (``dense_2`` for ``dense``) is matched by position (``order``: the
    saved ``model.weights`` order) when every path, numbering aside, and shape agrees.

    Raises:
        InvalidArgumentError: The model has no weights yet, or keys or shapes do not match.
    """
    expected = variable_keys(model)
    if not expected:
        raise InvalidArgumentError(f"model {model.name!r} has no weights yet: build it first (give it a "
                                   "keras.Input, or call it once on a batch) and load again.")
    names = {k for k, _ in expected}
    if names != set(tensors) and (paired := _by_position(expected, tensors, order)) is not None:
        tensors, names = paired, set(paired)
    problems = []
    if missing := [k for k, _ in expected if k not in tensors]:
        problems.append(f"missing from {source}: {_listing(missing)}")
    if unexpected := sorted(set(tensors) - names):
        problems.append(f"in {source} but not in the model: {_listing(unexpected)}")
    problems += [f"{key}: the model has shape {tuple(variable.shape)}, {source} has {tuple(tensors[key].shape)}"
                 for key, variable in expected if key in tensors and tuple(tensors[key].shape) != tuple(variable.shape)]
    if problems:
        raise InvalidArgumentError(f"the weights do not fit model {model.name!r}; nothing was loaded. "
                                   + "; ".join(problems)
                                   + ". Rebuild the model exactly as it was trained (same layers and names).")
    for key, variable in expected:
        variable.assign(tensors[key])


def _listing(keys: list[str], limit: int = 8) -> str:
    return ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def load_weights(model: Any, model_id: str, version: int | str | None = None) -> Any:
    """Load a recorded checkpoint's ``model.safetensors`` into a built Keras model, by variable path.

    Safetensors only (the format is read from the bytes); every key and shape is checked before any variable
    changes (see :func:`assign_weights`).

    Args:
        model: A built Keras model with the trained model's architecture (returned, for chaining).
        model_id: The modelyard model id (``ModelyardCallback.model_id``).
        version: A version number, ``"best"`` or ``"last"``, or ``None``: the newest ready version.

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
