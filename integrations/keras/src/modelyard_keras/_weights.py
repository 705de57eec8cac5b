"""Keras variables <-> safetensors tensors, keyed by each variable's Keras path (``dense/kernel``)."""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelyard import InvalidArgumentError, save_safetensors

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
    """Return ``(key, variable)`` for every weight of ``model``, in ``model.weights`` order.

    The key is the variable's Keras path. Keras keeps paths unique within a functional or sequential model;
    subclassed models can repeat one, so a repeat gets ``#1``, ``#2``, ... in order of appearance, the same
    on save and on load.

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


def _to_storable(array: np.ndarray) -> np.ndarray:
    # ml_dtypes types (bfloat16, float8_*) have kind "V" and no numpy reader on the load side; upcasting
    # to float32 is exact, and assignment casts back to the variable's dtype.
    if array.dtype.kind == "V":
        return array.astype(np.float32)
    return array


def capture_weights(model: Any) -> dict[str, np.ndarray]:
    """Copy every weight of ``model`` to a numpy array, on whichever backend Keras runs.

    Returns:
        Key (see :func:`variable_keys`) -> array.
    """
    keras = import_keras()
    convert = keras.ops.convert_to_numpy
    # `variable.value` is the backend tensor: converting it directly skips the Variable's own __array__.
    return {key: _to_storable(np.asarray(convert(variable.value))) for key, variable in variable_keys(model)}


def save_weights(model: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``model``'s weights to a safetensors file (atomically).

    Returns:
        The path written.
    """
    keras = import_keras()
    tensors = capture_weights(model)
    metadata = {"format": "keras", "keras_version": str(keras.__version__),
                "backend": str(keras.backend.backend()), ORDER_KEY: json.dumps(list(tensors))}
    return save_safetensors(tensors, path, metadata=metadata)


def read_order(path: str | os.PathLike[str]) -> list[str] | None:
    """Return the key order recorded by :func:`save_weights`, or ``None`` when the file has none.

    Call only on a file already validated as safetensors (``modelyard.load_weights`` does that).
    """
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    text = (header.get("__metadata__") or {}).get(ORDER_KEY)
    if not isinstance(text, str):
        return None
    try:
        order = json.loads(text)
    except ValueError:
        return None
    if not isinstance(order, list) or not all(isinstance(k, str) for k in order):
        return None
    return order


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
    """Assign arrays to ``model``'s variables by key; check everything before changing anything.

    Keys are matched exactly. When they differ only in Keras's automatic layer numbering (``dense_2`` for
    ``dense``: the same architecture built again in one process) and ``order`` is known, arrays are paired
    by position instead, provided every path (numbering aside) and shape agrees.

    Args:
        model: A built Keras model.
        tensors: Key -> array, as :func:`capture_weights` produced them.
        source: Where the arrays came from, for error messages.
        order: The keys in the saved model's ``model.weights`` order (see :func:`read_order`).

    Raises:
        InvalidArgumentError: The model has no weights yet, or keys or shapes do not match.
    """
    expected = variable_keys(model)
    if not expected:
        raise InvalidArgumentError(f"model {model.name!r} has no weights yet: build it first (give it a "
                                   "keras.Input, or call it once on a batch) and load again.")
    names = {k for k, _ in expected}
    if names != set(tensors):
        paired = _by_position(expected, tensors, order)
        if paired is not None:
            tensors = paired
            names = set(paired)
    missing = [k for k, _ in expected if k not in tensors]
    unexpected = sorted(set(tensors) - names)
    problems = []
    if missing:
        problems.append(f"missing from {source}: {_listing(missing)}")
    if unexpected:
        problems.append(f"in {source} but not in the model: {_listing(unexpected)}")
    for key, variable in expected:
        if key in tensors and tuple(tensors[key].shape) != tuple(variable.shape):
            problems.append(f"{key}: the model has shape {tuple(variable.shape)}, {source} has "
                            f"{tuple(tensors[key].shape)}")
    if problems:
        raise InvalidArgumentError(f"the weights do not fit model {model.name!r}; nothing was loaded. "
                                   + "; ".join(problems)
                                   + ". Rebuild the model exactly as it was trained (same layers and names).")
    for key, variable in expected:
        variable.assign(tensors[key])


def _listing(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")
