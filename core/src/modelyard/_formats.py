"""Configuration text, label enumerations, weight-file formats and safe weight loading.

A leaf module: it imports only the standard library, numpy, PyYAML, safetensors and :mod:`modelyard._errors`.
Frameworks (torch) are imported inside the one function that needs them.

Everything here treats its input as untrusted (RELIABILITY.md invariants 1 and 2): a weights file's format is
decided from its magic bytes only, never from its name or from a stored field, and nothing pickle-based is
loaded unless the call itself opts in.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import pickletools
import struct
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from safetensors import SafetensorError

from modelyard._errors import (
    ConfigError,
    FormatError,
    InvalidArgumentError,
    LabelError,
    MissingDependencyError,
    UnsafeFormatError,
    short_repr,
)

__all__ = ["FORMATS", "config_to_text", "labels_from_names", "load_weights", "save_safetensors",
           "sniff_format", "text_to_config", "validate_config_text", "validate_labels",
           "validate_safetensors"]

StrPath = str | os.PathLike[str]

#: Every value :func:`sniff_format` can return.
FORMATS = ("safetensors", "pickle", "torch-zip", "keras", "zip", "hdf5", "unknown")

# Limits on configuration values. Deeper or larger structures are refused rather than risking a
# RecursionError or an exponential walk of a YAML alias bomb (shared references are walked once per use).
_MAX_DEPTH = 100
_MAX_NODES = 1_000_000
_MAX_ARRAY_SIZE = 10_000
# Python refuses to print ints longer than 4300 digits; refusing earlier keeps the error ours and clear.
_MAX_INT_BITS = 4096
# The safetensors library's own limit on the JSON header.
_MAX_SAFETENSORS_HEADER = 100_000_000
# Signed 64-bit, so a label id fits every registry backend.
_LABEL_ID_RANGE = (-(2**63), 2**63 - 1)

_TORCH_HINT = "install it with `pip install torch==2.13.0`"


# --------------------------------------------------------------------------------------------- config


_short = short_repr


def _where(path: tuple[object, ...]) -> str:
    return "config" + "".join(f"[{_short(part)}]" for part in path)


def _check_text(text: str, path: tuple[object, ...], what: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ConfigError(
            f"{what} at {_where(path)} contains a lone surrogate ({e.reason} at index {e.start}); "
            "it cannot be stored as UTF-8. Fix the string before passing it."
        ) from None
    return str.__str__(text)  # the plain value, also for str subclasses such as (str, Enum) members


def _key_text(key: object, path: tuple[object, ...]) -> str:
    """Convert a mapping key to the string JSON would use, refusing keys JSON cannot represent."""
    if isinstance(key, str):
        return _check_text(key, path, "A key")
    if key is None:
        return "null"
    if isinstance(key, bool | np.bool_):
        return "true" if key else "false"
    if isinstance(key, int | np.integer) and int(key).bit_length() <= _MAX_INT_BITS:
        return str(int(key))
    if isinstance(key, float | np.floating):
        if not math.isfinite(key):
            raise ConfigError(f"Key {key!r} at {_where(path)} is not finite; JSON cannot represent it.")
        return float.__repr__(float(key))
    raise ConfigError(
        f"Key {_short(key)} at {_where(path)} is a {type(key).__name__}; config keys must be strings "
        "(int, float, bool and None keys are converted to strings). Convert the key to a string."
    )


def _normalise(value: Any, path: tuple[object, ...], active: set[int], budget: list[int]) -> Any:
    """Return ``value`` as plain JSON-compatible Python values, or raise ConfigError naming the path."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ConfigError(f"The config has more than {_MAX_NODES} values (counting repeated references).")
    if len(path) > _MAX_DEPTH:
        raise ConfigError(f"The config is nested more than {_MAX_DEPTH} levels deep at {_where(path[:5])}...")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, np.generic) and not isinstance(value, np.str_ | np.bytes_):
        if isinstance(value, np.bool_):
            return bool(value)
        if not isinstance(value, np.integer | np.floating):
            raise ConfigError(f"Value at {_where(path)} is a numpy {value.dtype}; only bool, integer and "
                              "float numpy scalars can be stored in a config.")
        value = int(value) if isinstance(value, np.integer) else float(value)  # float() also for longdouble
    if isinstance(value, int):
        if value.bit_length() > _MAX_INT_BITS:
            raise ConfigError(f"Integer at {_where(path)} is longer than {_MAX_INT_BITS} bits.")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"Value at {_where(path)} is {value!r}; JSON cannot represent NaN or infinity. "
                              "Store it as a string or as null.")
        return float(value)
    if isinstance(value, str):
        return _check_text(value, path, "The string")
    if isinstance(value, bytes | bytearray | memoryview):
        raise ConfigError(f"Value at {_where(path)} is {type(value).__name__}; configs hold text only. "
                          "Decode it to str (or base64-encode it) first.")
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf" or value.size > _MAX_ARRAY_SIZE:
            raise ConfigError(f"Array at {_where(path)} (dtype {value.dtype}, {value.size} elements) cannot "
                              "be stored in a config: only bool/int/float arrays of at most "
                              f"{_MAX_ARRAY_SIZE} elements become lists. Save large arrays as weights.")
        return _normalise(value.tolist(), path, active, budget)
    if isinstance(value, Mapping | list | tuple):
        if id(value) in active:
            raise ConfigError(f"The config contains a circular reference at {_where(path)}.")
        active.add(id(value))
        try:
            if isinstance(value, Mapping):
                out: dict[str, Any] = {}
                originals: dict[str, object] = {}
                for key, item in value.items():
                    text = _key_text(key, path)
                    if text in out:
                        raise ConfigError(f"Keys {_short(originals[text])} and {_short(key)} at "
                                          f"{_where(path)} both become the JSON key {_short(text)}; "
                                          "rename one of them.")
                    originals[text] = key
                    out[text] = _normalise(item, (*path, key), active, budget)
                return out
            return [_normalise(item, (*path, i), active, budget) for i, item in enumerate(value)]
        finally:
            active.discard(id(value))
    raise ConfigError(f"Value at {_where(path)} is a {type(value).__name__}, which is not JSON serialisable. "
                      "Use dicts, lists, tuples, str, int, float, bool, None or numpy scalars.")


def _normalise_config(config: object) -> dict[str, Any]:
    if not isinstance(config, Mapping):
        raise ConfigError(f"A config must be a mapping (dict), not {type(config).__name__}.")
    return _normalise(config, (), set(), [_MAX_NODES])


def config_to_text(config_dict: Mapping[Any, Any]) -> str:
    """Serialise a configuration mapping to canonical JSON text.

    Insertion order is kept and the output is deterministic (2-space indent, UTF-8 characters kept). Tuples
    become lists; numpy bool/integer/float scalars become Python scalars; numpy bool/int/float arrays of at
    most 10,000 elements become (nested) lists; int, float, bool and None keys become the strings JSON uses,
    as long as they do not collide with another key of the same mapping. ``text_to_config`` of the result
    returns exactly that converted dict.

    Args:
        config_dict: The configuration. The top level must be a mapping.

    Returns:
        The JSON text.

    Raises:
        ConfigError: The config cannot be stored exactly: NaN or infinity, a circular reference, nesting
            deeper than 100 levels, bytes, a lone surrogate, a non-string key that is not convertible or that
            collides, or a value of another type. The message names the offending key path.
    """
    return json.dumps(_normalise_config(config_dict), allow_nan=False, ensure_ascii=False, indent=2)


def validate_config_text(text: object) -> str:
    """Check that configuration text can be stored, and return it as ``str``.

    Args:
        text: The text. ``bytes`` are decoded as strict UTF-8.

    Returns:
        The text as ``str``, unchanged.

    Raises:
        ConfigError: ``text`` is neither ``str`` nor bytes, is not valid UTF-8, or holds a lone surrogate
            or a NUL character.
    """
    if isinstance(text, bytes | bytearray | memoryview):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"Config text is not valid UTF-8 (byte {e.start}: {e.reason}). "
                              "Decode it with the right encoding and pass a str.") from None
    if not isinstance(text, str):
        raise ConfigError(f"Config text must be a str, not {type(text).__name__}.")
    if "\x00" in text:
        # PostgreSQL text cannot hold NUL; refuse it on every backend so a registry behaves the same on both.
        raise ConfigError(f"Config text contains a NUL character at index {text.index(chr(0))}; it cannot be "
                          "stored.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ConfigError(f"Config text contains a lone surrogate at index {e.start}; it cannot be stored "
                          "as UTF-8.") from None
    return str(text)


def _strict_json(text: str, error: type[Exception], what: str) -> Any:
    """Parse JSON refusing repeated keys (which json keeps last-wins) and NaN/Infinity, raising ``error``."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise error(f"{what} repeats the key {_short(key)}; each key may appear only once")
            out[key] = value
        return out

    def constant(name: str) -> None:
        raise error(f"{what} contains {name}; JSON here cannot hold NaN or infinity")

    return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)


class _ConfigLoader(yaml.SafeLoader):
    """A SafeLoader that builds JSON-like values only and refuses duplicate keys.

    Timestamps stay strings (a date in a config is data, and must survive a JSON round trip) and ``!!binary``
    is refused, as configs hold text only.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # Checked before merge keys (<<) are flattened: a key may legitimately override a merged one.
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable; the base class reports it as a ConstructorError
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {_short(key)}",
                                                        key_node.start_mark)
        return super().construct_mapping(node, deep=deep)

    def construct_undefined_binary(self, node: yaml.Node) -> None:
        raise yaml.constructor.ConstructorError(None, None, "binary values are not allowed in a config",
                                                node.start_mark)


_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ConfigLoader.add_constructor(_TIMESTAMP_TAG, yaml.SafeLoader.construct_yaml_str)
_ConfigLoader.add_constructor("tag:yaml.org,2002:binary", _ConfigLoader.construct_undefined_binary)


def text_to_config(text: str | bytes) -> dict[str, Any]:
    """Parse configuration text (a JSON object, else a YAML mapping) into a dict.

    Parsing never runs code: YAML goes through a restricted ``SafeLoader``. The result is normalised as by
    :func:`config_to_text` (string keys, no NaN), so ``config_to_text(text_to_config(t))`` always succeeds.

    Args:
        text: The configuration text.

    Returns:
        The configuration as a new dict.

    Raises:
        ConfigError: The text is invalid, repeats a key, is nested too deeply, or is not a mapping. The
            message says that the text itself is kept verbatim.
    """
    text = validate_config_text(text)
    try:
        try:
            parsed = _strict_json(text, ConfigError, "Config text")
        except json.JSONDecodeError:
            parsed = yaml.load(text, Loader=_ConfigLoader)  # _ConfigLoader is a SafeLoader
    except ConfigError:
        raise
    except RecursionError:
        raise ConfigError("Config text is nested too deeply to parse.") from None
    except Exception as e:  # PyYAML's constructors raise KeyError, TypeError, ... for hostile tags
        raise ConfigError(f"Config text is neither a JSON object nor a YAML mapping ({_short(str(e), 200)}); "
                          "it is kept verbatim as text but has no dict form.") from e
    if not isinstance(parsed, Mapping):
        raise ConfigError(f"Config text parses to a {type(parsed).__name__}, not a mapping; it is kept "
                          "verbatim as text but has no dict form.")
    return _normalise_config(parsed)


# --------------------------------------------------------------------------------------------- labels


def validate_labels(labels: object) -> dict[str, int]:
    """Check a label enumeration and return it as a new plain dict.

    Args:
        labels: A mapping of label name to integer id, e.g. ``{"background": 0, "person": 1}``.

    Returns:
        A new ``dict[str, int]`` in the same order; numpy integer ids become ``int``.

    Raises:
        LabelError: ``labels`` is not a mapping; a key is not a non-empty string without control characters
            or lone surrogates; an id is not an integer (``bool`` and integral floats are refused) or not
            within signed 64 bits; or two labels share an id. The message names the offending label.
    """
    if not isinstance(labels, Mapping):
        raise LabelError(f"Labels must be a mapping of name to integer id, not {type(labels).__name__}.")
    out: dict[str, int] = {}
    owner: dict[int, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not key:
            raise LabelError(f"Label name {_short(key)} must be a non-empty string.")
        if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in key):
            raise LabelError(f"Label name {_short(key)} contains a control character.")
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise LabelError(f"Label name {_short(key)} contains a lone surrogate.") from None
        # bool is an int subclass and np.bool_ is not an np.integer, so this refuses both.
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise LabelError(f"Label {_short(key)} has id {_short(value)} of type {type(value).__name__}; "
                             "ids must be integers (bool and float are refused).")
        ident = int(value)
        if not _LABEL_ID_RANGE[0] <= ident <= _LABEL_ID_RANGE[1]:
            raise LabelError(f"Label {_short(key)} has id {_short(ident)}, outside the signed 64-bit range.")
        if ident in owner:
            raise LabelError(f"Labels {_short(owner[ident])} and {_short(key)} share the id {ident}; "
                             "ids must be unique.")
        owner[ident] = key
        out[str(key)] = ident
    return out


def labels_from_names(names: Sequence[str]) -> dict[str, int]:
    """Enumerate class names in order: ``["cat", "dog"]`` becomes ``{"cat": 0, "dog": 1}``.

    Args:
        names: The class names, in id order.

    Returns:
        The label enumeration.

    Raises:
        LabelError: ``names`` is a single string or not a sequence, a name is repeated, or a name is invalid.
    """
    if isinstance(names, str | bytes) or not isinstance(names, Sequence):
        raise LabelError(f"Class names must be a list of strings, not {type(names).__name__}.")
    labels: dict[object, int] = {}
    for index, name in enumerate(names):
        if not isinstance(name, str):
            raise LabelError(f"Class name {_short(name)} at position {index} must be a string.")
        if name in labels:
            raise LabelError(f"Class name {_short(name)} appears more than once.")
        labels[name] = index
    return validate_labels(labels)


# --------------------------------------------------------------------------------------------- sniffing

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# HDF5 allows a user block before the superblock; the superblock then sits at one of these offsets.
_HDF5_OFFSETS = (0, 512, 1024, 2048)
# Opcodes a protocol 0/1 pickle (or a legacy torch file) starts with: MARK, EMPTY_DICT, EMPTY_LIST,
# EMPTY_TUPLE, GLOBAL, NONE, PROTO is handled separately.
_PICKLE_V0_FIRST = b"(}])cN"


def _looks_like_pickle(head: bytes) -> bool:
    if len(head) >= 2 and head[0] == 0x80:
        return 2 <= head[1] <= 5
    if not head or head[0] not in _PICKLE_V0_FIRST:
        return False
    # Parse (never execute) the opcodes of the first bytes: text that merely starts with "(" fails quickly.
    count = 0
    try:
        for opcode, _, _ in pickletools.genops(io.BytesIO(head)):
            count += 1
            if opcode.name == "STOP" or count >= 4:
                return True
    except Exception:  # any parse failure of hostile bytes just means "not a pickle"
        return False
    return False


def _zip_kind(path: StrPath) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = {info.orig_filename for info in zf.infolist()}
    except Exception:  # a zip signature with a broken directory is still "zip", never loaded
        return "zip"
    if any(n == "data.pkl" or (n.endswith("/data.pkl") and n.count("/") == 1) for n in names):
        return "torch-zip"
    if "config.json" in names and names & {"model.weights.h5", "metadata.json"}:
        return "keras"
    return "zip"


def sniff_format(path: StrPath) -> str:
    """Detect a weights file's format from its magic bytes (never from its name or metadata).

    Args:
        path: The file.

    Returns:
        One of :data:`FORMATS`: ``"safetensors"``, ``"pickle"`` (including legacy ``torch.save`` files),
        ``"torch-zip"`` (``torch.save``'s zip format), ``"keras"`` (a Keras 3 ``.keras`` archive), ``"zip"``,
        ``"hdf5"`` or ``"unknown"``.

    Raises:
        OSError: The file cannot be read.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(4096)
        # safetensors first: its 8-byte length prefix can start with 0x80 0x02, like a pickle.
        if len(head) >= 10 and head[8:9] == b"{":
            n = int.from_bytes(head[:8], "little")
            if 2 <= n <= _MAX_SAFETENSORS_HEADER and 8 + n <= size:
                start = 8 + max(1, n - 64)  # the header's last bytes (padded with spaces) must close it
                f.seek(start)
                if f.read(8 + n - start).rstrip(b" ").endswith(b"}"):
                    return "safetensors"
        if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
            return _zip_kind(path)
        for offset in _HDF5_OFFSETS:
            f.seek(offset)
            if f.read(8) == _HDF5_MAGIC:
                return "hdf5"
    return "pickle" if _looks_like_pickle(head) else "unknown"


# --------------------------------------------------------------------------------------------- safetensors

# dtype -> bits per element, as accepted by the safetensors library (sub-byte types pack several per byte).
_SAFETENSORS_BITS = {
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8,
    "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}
# The dtypes safetensors.numpy can turn into numpy arrays.
_NUMPY_DTYPES = {"BOOL", "U8", "I8", "I16", "U16", "F16", "I32", "U32", "F32", "C64", "F64", "I64", "U64"}


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
    elements = 1
    for dim in shape:
        elements *= dim
        if elements * bits > 8 * data_len:  # stop early: a hostile shape could be a huge product
            break
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
            if n > _MAX_SAFETENSORS_HEADER:
                raise FormatError(f"its header length {n} exceeds the {_MAX_SAFETENSORS_HEADER}-byte limit")
            if 8 + n > size:
                raise FormatError(f"it is truncated: the header claims {n} bytes but the file has {size}")
            raw = f.read(n)
            if raw[:1] != b"{":
                raise FormatError("the header does not start with '{'")
            try:
                # Repeated keys are refused: the library keeps the last one, so two readers could disagree.
                header = _strict_json(raw.decode("utf-8"), FormatError, "the header")
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
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:64]}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        try:
            save_file(arrays, tmp, metadata=meta)
        except (SafetensorError, ValueError, TypeError) as e:
            raise InvalidArgumentError(f"Cannot save these arrays as safetensors: {e}") from e
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return target


def _fsync_dir(folder: Path) -> None:
    # Makes the rename durable; directories cannot be opened for fsync on Windows.
    if os.name == "posix":
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
