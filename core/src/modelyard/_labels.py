"""Label enumerations: name -> integer id, validated once for every way in (RELIABILITY.md I2).

A leaf module: it imports only the standard library, numpy and :mod:`modelyard._errors`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from modelyard._errors import LabelError, short_repr

__all__ = ["labels_from_names", "validate_labels"]

# Signed 64-bit, so a label id fits every registry backend.
_LABEL_ID_RANGE = (-(2**63), 2**63 - 1)

_short = short_repr



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

