"""Configuration text <-> dict: canonical JSON out, strict JSON or safe YAML in.

A leaf module: it imports only the standard library, numpy, PyYAML and :mod:`modelyard._errors`. Every input is
untrusted (RELIABILITY.md I1): NaN, circular references, huge nesting, lone surrogates and repeated keys are
refused with a message naming the key path, never stored approximately.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import yaml

from modelyard._errors import ConfigError, short_repr

__all__ = ["config_to_text", "strict_json", "text_to_config", "validate_config_text"]

# Limits on configuration values. Deeper or larger structures are refused rather than risking a
# RecursionError or an exponential walk of a YAML alias bomb (shared references are walked once per use).
_MAX_DEPTH = 100
_MAX_NODES = 1_000_000
_MAX_ARRAY_SIZE = 10_000
# Python refuses to print ints longer than 4300 digits; refusing earlier keeps the error ours and clear.
_MAX_INT_BITS = 4096

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


def strict_json(text: str, error: type[Exception], what: str) -> Any:
    """Parse JSON refusing repeated keys (which json keeps last-wins) and NaN/Infinity, raising ``error``.

    Args:
        text: The JSON text.
        error: The exception type to raise for a repeated key or a NaN/Infinity constant.
        what: What the text is, for the message (``"the header"``).

    Returns:
        The parsed value.

    Raises:
        json.JSONDecodeError: The text is not JSON.
    """

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
            parsed = strict_json(text, ConfigError, "Config text")
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

