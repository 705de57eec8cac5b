"""What every integration captures the same way: JSON-safe configuration values and label enumerations.

Framework-free: a framework's own objects reach :func:`json_safe` through its ``fallback`` (Keras serializes
its layers), never through an import here.
"""

from __future__ import annotations

import enum
import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._errors import LabelError
from ._labels import labels_from_names, validate_labels

_MAX_DEPTH = 60
_MAX_ARRAY = 1000
_MAX_REPR = 200


def _text(value: str) -> str:
    # Lone surrogates cannot be stored as UTF-8: replaced rather than refusing the whole configuration.
    return value.encode("utf-8", "replace").decode("utf-8")


def short_repr(value: Any) -> str:
    """Return a short, storable ``repr`` of anything (a broken ``__repr__`` gives the type's name)."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not stop a training run; record the type
        text = f"<{type(value).__qualname__}>"
    return _text(text if len(text) <= _MAX_REPR else text[:_MAX_REPR - 3] + "...")


def json_safe(value: Any, *, fallback: Callable[[Any], Any] | None = None) -> Any:
    """Return a JSON-safe copy of a configuration value, never failing.

    Numbers (numpy and torch scalars too) become Python numbers, non-finite floats the strings ``"nan"``,
    ``"inf"``, ``"-inf"``; mappings get string keys; tuples and sets become lists (sets sorted); small arrays
    and tensors their values, large ones ``"<array shape=... dtype=...>"``; paths and enums their text;
    classes and functions their qualified name; anything else its short ``repr``. A configuration records
    what was used, it never pickles it.

    Args:
        value: Any value.
        fallback: Called for an object none of the rules above knows (before its ``repr`` is taken), e.g. a
            framework's own serializer; what it returns is made JSON-safe in turn (returning the object
            itself, or raising, falls through to the ``repr``).

    Returns:
        A value made of ``dict``, ``list``, ``str``, ``int``, ``float``, ``bool`` and ``None`` only.
    """
    return _safe(value, fallback, 0, set())


def _safe(value: Any, fallback: Callable[[Any], Any] | None, depth: int, active: set[int]) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else str(number)
    if isinstance(value, enum.Enum):
        return _safe(value.value, fallback, depth + 1, active) if isinstance(value.value, str | int) \
            else value.name
    if isinstance(value, os.PathLike):
        return _text(os.fspath(value)) if isinstance(os.fspath(value), str) else short_repr(value)
    if depth > _MAX_DEPTH:
        return "<nested too deep>"
    if hasattr(value, "dtype") and hasattr(value, "shape") and callable(getattr(value, "tolist", None)):
        try:  # an array or a tensor: small ones by value, large ones by a short description
            shape = tuple(int(n) for n in value.shape)
            if math.prod(shape) <= _MAX_ARRAY:
                return _safe(value.tolist(), fallback, depth + 1, active)
        except (TypeError, ValueError, RuntimeError):
            return short_repr(value)
        return f"<array shape={shape} dtype={value.dtype}>"
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        if id(value) in active:
            return "<circular reference>"
        active.add(id(value))
        try:
            if isinstance(value, Mapping):
                return {_text(str(k)): _safe(v, fallback, depth + 1, active) for k, v in list(value.items())}
            items = sorted(value, key=repr) if isinstance(value, set | frozenset) else list(value)
            return [_safe(v, fallback, depth + 1, active) for v in items]
        finally:
            active.discard(id(value))
    if fallback is not None:
        try:
            converted = fallback(value)
        except Exception:  # noqa: BLE001 - a serializer that fails keeps a readable trace, never stops training
            converted = value
        if converted is not value:
            return _safe(converted, None, depth + 1, active)
    if isinstance(value, type) or callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '?')}.{value.__qualname__}"
    return short_repr(value)


def metric_value(value: Any) -> float | int | str | None:
    """Return a metric value as JSON: a number, ``"nan"``/``"inf"``/``"-inf"`` text, or ``None``."""
    if value is None:
        return None
    safe = json_safe(value)
    if isinstance(safe, list) and len(safe) == 1:
        safe = safe[0]
    if isinstance(safe, str):
        try:
            return str(float(safe)) if not math.isfinite(float(safe)) else float(safe)
        except ValueError:
            return None
    return safe if isinstance(safe, float | int) and not isinstance(safe, bool) else None


def _is_id(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) \
        or isinstance(value, str) and value.lstrip("-").isdigit()


def labels_from_id2label(id2label: Mapping[Any, Any], where: str = "id2label") -> dict[str, int]:
    """Invert an ``id2label`` mapping (integer ids, or digit strings as in JSON configs) into label -> id.

    Args:
        id2label: Output index -> label name.
        where: Where the mapping was found, for the error message.

    Returns:
        The validated label enumeration.

    Raises:
        LabelError: An id is not an integer, a name is not a string, or two ids share a name.
    """
    labels: dict[str, int] = {}
    for raw_id, name in sorted(id2label.items(), key=lambda kv: int(kv[0]) if _is_id(kv[0]) else 0):
        if not _is_id(raw_id) or not isinstance(name, str):
            raise LabelError(f"{where} must map integer ids to label names, got {raw_id!r}: {name!r}.")
        if name in labels:
            raise LabelError(f"{where} names {name!r} for ids {labels[name]} and {int(raw_id)}: label {name!r} "
                             "appears twice. Give each id its own name, or pass label_enumeration= to "
                             "ModelyardCallback.")
        labels[name] = int(raw_id)
    return validate_labels(labels)


def check_labels_fit(labels: Mapping[str, int], outputs: int, *, labels_from: str, outputs_from: str,
                     positions: int | None = None) -> None:
    """Check that a label enumeration names the model's outputs: ``n`` outputs take the ids ``0..n-1``.

    A single output (a sigmoid or a single logit) takes two labels, 0 and 1.

    Args:
        labels: Label name -> id.
        outputs: How many outputs the model (or its declared ``num_classes``) has.
        labels_from: Where the labels came from (``"class_names"``, ``"module.hparams.classes"``...).
        outputs_from: What declares the outputs (``"model 'tiny'"``, ``"module.hparams.num_classes"``).
        positions: For labels that are positions in a vocabulary whose unnamed entries have no label: the
            vocabulary's size, which must then match the outputs instead of the set of ids.

    Raises:
        LabelError: The labels do not fit, naming both sizes and the next step.
    """
    ids = sorted(labels.values())
    expected = list(range(2 if outputs == 1 else outputs))
    if ids == expected or positions is not None and positions == len(expected):
        return
    shown = dict(list(labels.items())[:10])
    more = f" and {len(ids) - 10} more" if len(ids) > 10 else ""
    raise LabelError(
        f"The labels from {labels_from} ({len(ids)} labels {shown}{more}) do not fit the {outputs} outputs "
        f"declared by {outputs_from}: {outputs_from} has {outputs} output unit{'s' if outputs != 1 else ''}, "
        f"which take the ids {expected[0]}..{expected[-1]}. Give one label per output (ids 0..n-1), fix the "
        "model, or pass label_enumeration= to ModelyardCallback.")


def labels_from(value: Any, what: str = "label_enumeration") -> dict[str, int]:
    """Return the label enumeration a user gave: a mapping of label to id, or class names in output order.

    Raises:
        LabelError: Neither, or an invalid enumeration.
    """
    if isinstance(value, Mapping):
        return validate_labels(value)
    if isinstance(value, str | bytes):
        raise LabelError(f"{what} must be a list of class names or a mapping, not a {type(value).__name__}.")
    try:
        names = list(value)  # lists, tuples, numpy arrays of str
    except TypeError:
        raise LabelError(f"{what} must be a list of class names or a mapping, not {type(value).__name__}.") \
            from None
    return labels_from_names(names)


#: Where :func:`discover_labels` looks for labels in each source, in order.
LABEL_NAMES = ("label2id", "id2label", "class_names", "classes", "labels")
#: Where :func:`discover_labels` reads the declared number of outputs.
COUNT_NAMES = ("num_classes", "num_labels", "n_classes")


def _lookup(source: Any, name: str) -> Any:
    if isinstance(source, Mapping):
        return source.get(name)
    try:
        # An attribute; a property that fails (data not prepared yet) simply has no labels.
        return getattr(source, name, None)
    except Exception:  # noqa: BLE001 - any error of a user property means "not available here"
        return None


def _as_labels(value: Any, where: str) -> dict[str, int] | None:
    """Read one candidate as a label enumeration; ``None`` when it does not have the shape of one.

    A list or tuple of strings is enumerated in order; a mapping of string to integer is a ``label2id``; a
    mapping of integer (or digit string) to string is an ``id2label``. Anything else (a tensor of targets, a
    count) is ignored. A candidate with the shape but invalid (a repeated name) raises, naming where it was.
    """
    try:
        if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
            return labels_from_names(list(value))
        if isinstance(value, Mapping) and value:
            items = list(value.items())
            if all(isinstance(k, str) and _is_id(v) and not isinstance(v, str) for k, v in items):
                return validate_labels(dict(items))
            if all(_is_id(k) for k, _ in items) and all(isinstance(v, str) for _, v in items):
                return labels_from_id2label(dict(items), where)
    except LabelError as e:
        raise LabelError(f"The labels found in {where} are invalid: {e} Fix them, or pass "
                         "label_enumeration= to ModelyardCallback.") from e
    return None


def _find_labels(sources: Sequence[tuple[str, Any]]) -> tuple[dict[str, int] | None, str | None]:
    for where, source in sources:
        for name in LABEL_NAMES:
            labels = _as_labels(_lookup(source, name), f"{where}.{name}")
            if labels is not None:
                return labels, f"{where}.{name}"
    return None, None


def _output_count(sources: Sequence[tuple[str, Any]]) -> tuple[int | None, str | None]:
    for where, source in sources:
        for name in COUNT_NAMES:
            value = _lookup(source, name)
            if isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) > 0:
                return int(value), f"{where}.{name}"
    return None, None


def discover_labels(sources: Sequence[tuple[str, Any]], given: Mapping[str, int] | None = None, *,
                    discover: bool = True) -> tuple[dict[str, int] | None, str | None]:
    """Take (or find) a run's labels in its hyperparameters and check them against its declared outputs.

    Args:
        sources: ``(where, mapping or object)`` pairs searched in order, e.g.
            ``[("module.hparams", module.hparams), ("datamodule", datamodule)]``; each is looked at under
            :data:`LABEL_NAMES` for labels and :data:`COUNT_NAMES` for the number of outputs.
        given: Labels the user gave (they win; only checked).
        discover: Look for labels when none are given.

    Returns:
        ``(labels, where)``, e.g. ``({"cat": 0, "dog": 1}, "module.hparams.class_names")``, or
        ``(None, None)``.

    Raises:
        LabelError: A candidate has the shape of a label enumeration but is invalid, or the labels do not fit
            a declared ``num_classes``/``num_labels``.
    """
    labels, where = (dict(given), "label_enumeration") if given is not None else \
        _find_labels(sources) if discover else (None, None)
    if labels is not None and where is not None:
        count, count_from = _output_count(sources)
        if count is not None and count_from is not None:
            check_labels_fit(labels, count, labels_from=where, outputs_from=count_from)
    return labels, where
