"""What a Lightning run knows about itself: its JSON-safe configuration and its label enumeration.

Pure functions over public attributes of the trainer, the module and the datamodule (duck-typed, so both the
``lightning.pytorch`` and the ``pytorch_lightning`` namespaces work); nothing here touches the registry.
"""

from __future__ import annotations

import enum
import math
import numbers
import os
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from modelyard import LabelError, labels_from_names, validate_labels

#: Where labels are looked for, in order, under each source (hyperparameters first, then the datamodule).
LABEL_NAMES = ("label2id", "id2label", "class_names", "classes", "labels")
#: Hyperparameter or datamodule attributes that state the number of outputs, to validate labels against.
COUNT_NAMES = ("num_classes", "num_labels", "n_classes")

_MAX_DEPTH = 32
_MAX_TEXT = 1000
_MAX_ITEMS = 1000


# --------------------------------------------------------------------------------------------- config


def json_safe(value: Any, _depth: int = 0, _active: frozenset[int] = frozenset()) -> Any:
    """Return a JSON-safe copy of a hyperparameter value.

    Scalars are kept (numpy and torch scalars become Python numbers), non-finite floats become the strings
    ``"nan"``, ``"inf"``, ``"-inf"``, mappings get string keys, sequences and sets become lists, paths and
    enums become their text, and anything else (a module, a function, a class) becomes its qualified name or
    a short ``repr``: a configuration records what was used, it never pickles it.

    Args:
        value: Any hyperparameter value.

    Returns:
        A value made of ``dict``, ``list``, ``str``, ``int``, ``float``, ``bool`` and ``None`` only.
    """
    if value is None or isinstance(value, bool | str):
        return value[:_MAX_TEXT] if isinstance(value, str) else value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else str(number)
    if isinstance(value, enum.Enum):
        return json_safe(value.value, _depth + 1, _active) if isinstance(value.value, str | int) \
            else value.name
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, type) or callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '?')}.{value.__qualname__}"
    if _depth >= _MAX_DEPTH or id(value) in _active:
        return _short_repr(value)
    active = _active | {id(value)}
    if hasattr(value, "dtype") and hasattr(value, "shape") and callable(getattr(value, "tolist", None)):
        # A tensor or array: small ones are recorded by value, large ones by a short description.
        try:
            if math.prod(tuple(value.shape)) <= _MAX_ITEMS:
                return json_safe(value.tolist(), _depth + 1, active)
        except (TypeError, ValueError, RuntimeError):
            pass
        return _short_repr(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, _depth + 1, active) for k, v in list(value.items())[:_MAX_ITEMS]}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [json_safe(v, _depth + 1, active) for v in list(items)[:_MAX_ITEMS]]
    return _short_repr(value)


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not fail a training run; record the type
        text = f"<{type(value).__qualname__}>"
    return text if len(text) <= 200 else text[:197] + "..."


def hparams_of(obj: Any) -> dict[str, Any]:
    """Return the saved hyperparameters (``save_hyperparameters``) of a module or datamodule, JSON-safe."""
    hparams = getattr(obj, "hparams", None) if obj is not None else None
    if not isinstance(hparams, Mapping):
        return {}
    safe: dict[str, Any] = json_safe(dict(hparams))
    return safe


def _qualname(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def trainer_settings(trainer: Any) -> dict[str, Any]:
    """Return the trainer settings that shape a run: epochs, precision, strategy, accumulation, devices."""
    settings: dict[str, Any] = {}
    for name in ("max_epochs", "max_steps", "precision", "accumulate_grad_batches", "num_devices",
                 "num_nodes", "gradient_clip_val", "gradient_clip_algorithm", "check_val_every_n_epoch",
                 "val_check_interval"):
        if hasattr(trainer, name):
            settings[name] = json_safe(getattr(trainer, name))
    for name in ("strategy", "accelerator"):
        obj = getattr(trainer, name, None)
        if obj is not None:
            settings[name] = type(obj).__name__
    return settings


def run_config(trainer: Any, module: Any, namespace: str,
               checkpoint: Mapping[str, Any] | None) -> dict[str, Any]:
    """Build the ``config_dict`` of a run's model.

    Args:
        trainer: The trainer.
        module: The LightningModule.
        namespace: ``"lightning.pytorch"`` or ``"pytorch_lightning"``.
        checkpoint: The settings of the ModelCheckpoint whose saves the model holds (``None``: the final
            model).

    Returns:
        ``{"module": {...}, "datamodule": {...}, "trainer": {...}, "checkpoint": {...}, "versions": {...}}``.
    """
    config: dict[str, Any] = {"module": {"class": _qualname(module), "hparams": hparams_of(module)}}
    datamodule = getattr(trainer, "datamodule", None)
    if datamodule is not None:
        config["datamodule"] = {"class": _qualname(datamodule), "hparams": hparams_of(datamodule)}
    config["trainer"] = trainer_settings(trainer)
    if checkpoint is not None:
        config["checkpoint"] = json_safe(dict(checkpoint))
    config["versions"] = {"namespace": namespace, "lightning": _version(namespace.split(".")[0].replace(
        "_", "-")), "torch": _version("torch")}
    return config


def checkpoint_settings(checkpoint_callback: Any) -> dict[str, Any]:
    """Return a ModelCheckpoint's public settings (monitor, mode, top-k, last, weights-only, folder)."""
    out: dict[str, Any] = {}
    for name in ("monitor", "mode", "save_top_k", "save_last", "save_weights_only", "dirpath", "filename",
                 "every_n_epochs"):
        if hasattr(checkpoint_callback, name):
            out[name] = json_safe(getattr(checkpoint_callback, name))
    return out


# --------------------------------------------------------------------------------------------- labels


def _as_labels(value: Any, where: str) -> dict[str, int] | None:
    """Read one candidate as a label enumeration; ``None`` when it does not have the shape of one.

    A list or tuple of strings is enumerated in order; a mapping of string to integer is a ``label2id``; a
    mapping of integer (or digit string, as in JSON configs) to string is an ``id2label``. Anything else (a
    tensor of targets, a count, ``None``) is not a label enumeration and is ignored. A candidate that has the
    shape but is invalid (a repeated name, two labels sharing an id) raises, naming where it was found.
    """
    try:
        if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
            return labels_from_names(list(value))
        if isinstance(value, Mapping) and value:
            items = list(value.items())
            if all(isinstance(k, str) and _is_int(v) for k, v in items):
                return validate_labels(dict(items))
            if all(_is_int(k) or isinstance(k, str) and k.lstrip("-").isdigit() for k, _ in items) \
                    and all(isinstance(v, str) for _, v in items):
                inverted: dict[str, int] = {}
                for k, v in sorted(items, key=lambda kv: int(kv[0])):
                    if v in inverted:
                        raise LabelError(f"Label {v!r} appears twice.")
                    inverted[v] = int(k)
                return validate_labels(inverted)
    except LabelError as e:
        raise LabelError(f"The labels found in {where} are invalid: {e} Fix them, or pass "
                         "label_enumeration= to ModelyardCallback.") from e
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _sources(module: Any, datamodule: Any) -> list[tuple[str, Any]]:
    """The places labels are looked for: module hparams, datamodule hparams, then datamodule attributes."""
    sources: list[tuple[str, Any]] = []
    for label, obj in (("module.hparams", module), ("datamodule.hparams", datamodule)):
        hparams = getattr(obj, "hparams", None) if obj is not None else None
        if isinstance(hparams, Mapping):
            sources.append((label, hparams))
    if datamodule is not None:
        sources.append(("datamodule", datamodule))
    return sources


def _lookup(source: Any, name: str) -> Any:
    if isinstance(source, Mapping):
        return source.get(name)
    try:
        # A datamodule attribute; a property that fails (data not prepared yet) simply has no labels.
        return getattr(source, name, None)
    except Exception:  # noqa: BLE001 - any error of a user property means "not available here"
        return None


def discover_labels(module: Any, datamodule: Any) -> tuple[dict[str, int] | None, str | None]:
    """Find a label enumeration in the usual places.

    Args:
        module: The LightningModule.
        datamodule: The LightningDataModule, or ``None``.

    Returns:
        ``(labels, where)``, e.g. ``({"cat": 0, "dog": 1}, "module.hparams.class_names")``, or
        ``(None, None)`` when nothing that looks like a label enumeration is found.

    Raises:
        LabelError: A candidate has the shape of a label enumeration but is invalid.
    """
    for where, source in _sources(module, datamodule):
        for name in LABEL_NAMES:
            labels = _as_labels(_lookup(source, name), f"{where}.{name}")
            if labels is not None:
                return labels, f"{where}.{name}"
    return None, None


def output_count(module: Any, datamodule: Any) -> tuple[int | None, str | None]:
    """Return the number of outputs a run declares (``num_classes`` and the like), and where it was found."""
    for where, source in _sources(module, datamodule):
        for name in COUNT_NAMES:
            value = _lookup(source, name)
            if _is_int(value) and int(value) > 0:
                return int(value), f"{where}.{name}"
    return None, None


def check_labels_fit(labels: Mapping[str, int], count: int, labels_from: str, count_from: str) -> None:
    """Check that a label enumeration matches the declared number of outputs.

    ``count == 1`` with two labels is accepted (a single-logit binary classifier).

    Raises:
        LabelError: The sizes differ, or an id falls outside ``range(count)``.
    """
    ids = sorted(labels.values())
    binary = count == 1 and len(ids) == 2 and ids == [0, 1]
    if binary:
        return
    if len(ids) != count or ids[0] < 0 or ids[-1] >= count:
        raise LabelError(
            f"The labels from {labels_from} ({len(ids)} labels, ids {ids[0]}..{ids[-1]}) do not fit the "
            f"{count} outputs declared by {count_from}. Fix one of them, or pass label_enumeration= to "
            "ModelyardCallback.")
