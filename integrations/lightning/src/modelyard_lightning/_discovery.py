"""What a Lightning run knows about itself: its JSON-safe configuration and its label enumeration.

Pure functions over public attributes of the trainer, the module and the datamodule (duck-typed, so both the
``lightning.pytorch`` and the ``pytorch_lightning`` namespaces work); nothing here touches the registry.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from modelyard import LabelError, json_safe, labels_from_id2label, labels_from_names, validate_labels

#: Where labels are looked for, in order, under each source (hyperparameters first, then the datamodule).
LABEL_NAMES = ("label2id", "id2label", "class_names", "classes", "labels")
#: Hyperparameter or datamodule attributes that state the number of outputs, to validate labels against.
COUNT_NAMES = ("num_classes", "num_labels", "n_classes")



# --------------------------------------------------------------------------------------------- config


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
                return labels_from_id2label(dict(items), where)
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
