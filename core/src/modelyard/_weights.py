"""safetensors validation and safe weight loading and saving.

A leaf module: it imports only the standard library, numpy, safetensors and the other leaves
(:mod:`modelyard._sniff`, :mod:`modelyard._config`, :mod:`modelyard._files`, :mod:`modelyard._errors`).
Frameworks (torch) are imported inside the one function that needs them.

Everything here treats its input as untrusted (RELIABILITY.md invariants 1 and 2): a weights file's format is
decided from its magic bytes only, never from its name or from a stored field, and nothing pickle-based is
loaded unless the call itself opts in.
"""

from __future__ import annotations

import os
import pickle
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError

from modelyard._config import strict_json
from modelyard._errors import FormatError, InvalidArgumentError, MissingDependencyError, UnsafeFormatError, short_repr
from modelyard._files import StrPath, atomic_path
from modelyard._sniff import MAX_SAFETENSORS_HEADER, sniff_format

__all__ = ["load_weights", "save_safetensors", "validate_safetensors"]

_TORCH_HINT = "install it with `pip install torch==2.13.0`"

_short = short_repr


# dtype -> bits per element, as accepted by the safetensors library (sub-byte types pack several per byte).
_SAFETENSORS_BITS = {
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8,
    "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}
# The dtypes safetensors.numpy can turn into numpy arrays.
_NUMPY_DTYPES = {"BOOL", "U8", "I8", "I16", "U16", "F16", "I32", "U32", "F32", "C64", "F64", "I64", "U64"}


#: The largest array numpy (and torch, with int64 sizes) can describe, in bytes.
_MAX_ARRAY_BYTES = 2**63 - 1


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_tensor(name: str, info: object, data_len: int) -> tuple[int, int]:
    if not isinstance(info, dict):
        raise FormatError(f"tensor {_short(name)} is described by a {type(info).__name__}, not an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in _SAFETENSORS_BITS:
        raise FormatError(f"tensor {_short(name)} has unknown dtype {_short(dtype)}")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise FormatError(f"tensor {_short(name)} has an invalid shape {_short(shape)}")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(o) for o in offsets)
            or offsets[0] > offsets[1]):
        raise FormatError(f"tensor {_short(name)} has invalid data_offsets {_short(offsets)}")
    begin, end = offsets
    if end > data_len:
        raise FormatError(f"tensor {_short(name)} ends at byte {end} of a {data_len}-byte data section")
    bits = _SAFETENSORS_BITS[dtype]
    # One rule for every dimension, zero or not: the shape must describe an array that numpy and torch can
    # build (int64 sizes, at most 2**63 - 1 bytes counting the non-zero dimensions, as numpy does). A zero
    # next to a huge dimension holds no bytes, yet reshaping it still fails in the loader with a raw
    # TypeError or ValueError, so it is refused here as for a non-empty tensor.
    span = 1
    for dim in shape:
        span *= dim or 1
        if span * bits > 8 * _MAX_ARRAY_BYTES:  # stop early: a hostile shape could be a huge product
            raise FormatError(f"tensor {_short(name)} has a shape {_short(shape)} too large for any array "
                              f"(over {_MAX_ARRAY_BYTES} bytes)")
    elements = 0 if 0 in shape else span
    if (elements * bits) % 8 or elements * bits // 8 != end - begin:
        raise FormatError(f"tensor {_short(name)}: shape {_short(shape)} of {dtype} does not fill "
                          f"its {end - begin} bytes")
    return begin, end


def validate_safetensors(path: StrPath) -> dict[str, Any]:
    """Validate a safetensors file's header against the file, reading only the header.

    Stricter than the safetensors library: duplicate JSON keys are refused instead of last-wins, and the
    header must start with ``{``.

    Args:
        path: The file.

    Returns:
        The parsed header: tensor name -> ``{"dtype", "shape", "data_offsets"}``, plus ``"__metadata__"``
        (str -> str) when present.

    Raises:
        FormatError: The file is truncated; the header length exceeds 100 MB or the file; the header is not a
            UTF-8 JSON object or repeats a key; a dtype is unknown; a shape does not match its byte span;
            offsets are out of range, overlap, leave gaps or do not cover the data section exactly; or
            ``__metadata__`` is not a str -> str object.
        OSError: The file cannot be read.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        prefix = f.read(8)
        try:
            if len(prefix) < 8:
                raise FormatError(f"it is truncated ({size} bytes, shorter than the 8-byte header length)")
            (n,) = struct.unpack("<Q", prefix)
            if n > MAX_SAFETENSORS_HEADER:
                raise FormatError(f"its header length {n} exceeds the {MAX_SAFETENSORS_HEADER}-byte limit")
            if 8 + n > size:
                raise FormatError(f"it is truncated: the header claims {n} bytes but the file has {size}")
            raw = f.read(n)
            if raw[:1] != b"{":
                raise FormatError("the header does not start with '{'")
            try:
                # Repeated keys are refused: the library keeps the last one, so two readers could disagree.
                header = strict_json(raw.decode("utf-8"), FormatError, "the header")
            except FormatError:
                raise
            except RecursionError:
                raise FormatError("the header is nested too deeply") from None
            except ValueError as e:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
                raise FormatError(f"the header is not UTF-8 JSON ({_short(str(e), 120)})") from None
            if not isinstance(header, dict):
                raise FormatError("the header is not a JSON object")
            data_len = size - 8 - n
            spans = []
            for name, info in header.items():
                if name == "__metadata__":
                    if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                        raise FormatError("__metadata__ must map strings to strings")
                    continue
                spans.append((*_check_tensor(name, info, data_len), name))
            expected = 0
            for begin, end, name in sorted(spans):
                if begin != expected:
                    what = "overlaps the previous tensor" if begin < expected else "leaves a gap before it"
                    raise FormatError(f"tensor {_short(name)} starts at byte {begin} and {what} "
                                      f"(expected byte {expected})")
                expected = end
            if expected != data_len:
                raise FormatError(f"the tensors cover {expected} bytes of a {data_len}-byte data section")
        except FormatError as e:
            raise FormatError(f"{os.fspath(path)!r} is not a valid safetensors file: {e}") from None
    return header


# --------------------------------------------------------------------------------------------- loading


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise MissingDependencyError(f"Loading this file needs torch; {_TORCH_HINT}.") from e
    return torch


def _to_numpy(value: Any, torch: Any) -> Any:
    if isinstance(value, torch.Tensor):
        try:
            return value.detach().cpu().numpy()
        except (TypeError, RuntimeError) as e:
            raise FormatError(f"A {value.dtype} tensor has no numpy equivalent; use backend='torch'.") from e
    if isinstance(value, Mapping):
        return {k: _to_numpy(v, torch) for k, v in value.items()}
    return value


def load_weights(path: StrPath, *, allow_unsafe: bool = False, backend: str = "numpy") -> dict[str, Any]:
    """Load a weights file, choosing the loader from the file's magic bytes only.

    safetensors files are validated (:func:`validate_safetensors`) and loaded without running code. Pickle
    based files (legacy ``torch.save``, ``torch.save`` zip archives, ``.ckpt``/``.pt``/``.bin``/``.pkl``
    whatever their name) are refused unless ``allow_unsafe=True``; even then they only go through
    ``torch.load(weights_only=True)``, and a refusal by that restricted unpickler is final.

    Args:
        path: The weights file.
        allow_unsafe: Opt in, for this call, to loading pickle-based files through torch's weights-only
            unpickler.
        backend: ``"numpy"`` for numpy arrays or ``"torch"`` for torch tensors (needs torch).

    Returns:
        Tensor name -> array. For pickle-based files, the mapping torch returned (nested mappings kept).

    Raises:
        UnsafeFormatError: The file is pickle-based and ``allow_unsafe`` is false, or torch's weights-only
            unpickler refused it.
        FormatError: The file is malformed, is not a weights format this function reads (Keras, HDF5, plain
            zip, unknown), or holds a dtype the backend cannot represent.
        MissingDependencyError: torch is needed and not installed.
        InvalidArgumentError: ``backend`` is not ``"numpy"`` or ``"torch"``.
    """
    if backend not in ("numpy", "torch"):
        raise InvalidArgumentError(f"backend must be 'numpy' or 'torch', not {_short(backend)}.")
    fmt = sniff_format(path)
    where = repr(os.fspath(path))
    if fmt == "safetensors":
        header = validate_safetensors(path)
        if backend == "torch":
            _import_torch()
            from safetensors.torch import load_file as load_torch

            try:
                return dict(load_torch(path, device="cpu"))
            except SafetensorError as e:
                raise FormatError(f"{where} could not be loaded as safetensors: {e}") from e
        odd = sorted({info["dtype"] for k, info in header.items() if k != "__metadata__"} - _NUMPY_DTYPES)
        if odd:
            raise FormatError(f"{where} holds {', '.join(odd)} tensors, which numpy cannot represent; "
                              "load it with backend='torch'.")
        from safetensors.numpy import load_file as load_numpy

        try:
            return dict(load_numpy(path))
        except SafetensorError as e:
            raise FormatError(f"{where} could not be loaded as safetensors: {e}") from e
    if fmt in ("pickle", "torch-zip"):
        if not allow_unsafe:
            raise UnsafeFormatError(
                f"{where} is a {fmt} file: loading it can run arbitrary code, so it was not loaded. If you "
                "trust it, pass allow_unsafe=True to load it through torch.load(weights_only=True), or "
                "convert it to safetensors."
            )
        torch = _import_torch()
        try:
            # A file object, not the path: torch.load picks a loader from a path's extension, we never do.
            with open(path, "rb") as f:
                loaded = torch.load(f, weights_only=True, map_location="cpu")
        except pickle.UnpicklingError as e:
            raise UnsafeFormatError(f"{where} was refused by torch's weights-only unpickler (it references "
                                    "code or types beyond plain tensors); it was not loaded.") from e
        except Exception as e:  # torch raises many types for malformed files
            raise FormatError(f"{where} could not be loaded by torch.load(weights_only=True): {e}") from e
        if not isinstance(loaded, Mapping):
            raise FormatError(f"{where} holds a {type(loaded).__name__}, not a mapping of tensors.")
        return dict(loaded) if backend == "torch" else _to_numpy(loaded, torch)
    raise FormatError(f"{where} is not a weights format load_weights reads (detected: {fmt}); "
                      "load it with its framework's own loader.")


def save_safetensors(tensors: Mapping[str, np.ndarray], path: StrPath,
                     metadata: Mapping[str, str] | None = None) -> Path:
    """Write numpy arrays to a safetensors file atomically (temp file, fsync, rename in the same folder).

    Args:
        tensors: Tensor name -> numpy array.
        path: The file to write; replaced if it exists. Its folder must exist.
        metadata: Optional str -> str metadata stored in the header.

    Returns:
        The path written.

    Raises:
        InvalidArgumentError: A name is not a string, a value is not a numpy array of a supported dtype, or
            the metadata is not str -> str.
    """
    from safetensors.numpy import save_file

    arrays: dict[str, np.ndarray] = {}
    for name, array in tensors.items():
        if not isinstance(name, str) or not isinstance(array, np.ndarray):
            raise InvalidArgumentError(f"Tensor {_short(name)} must be a numpy array under a str name.")
        arrays[name] = np.ascontiguousarray(array)  # safetensors needs dense, C-ordered data
    meta = None if metadata is None else dict(metadata)
    if meta is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise InvalidArgumentError("safetensors metadata must map strings to strings.")
    target = Path(path)
    with atomic_path(target) as staged:
        try:
            save_file(arrays, os.fspath(staged.path), metadata=meta)
        except (SafetensorError, ValueError, TypeError) as e:
            raise InvalidArgumentError(f"Cannot save these arrays as safetensors: {e}") from e
    return target
