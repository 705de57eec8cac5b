"""What a Lightning run knows about itself: its JSON-safe configuration and where its labels are.

Pure functions over public attributes of the trainer, the module and the datamodule (duck-typed, so both
namespaces work); nothing here touches the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from typing import Any

from modelyard import find_labels, find_output_count, json_safe

_TRAINER_SETTINGS = ("max_epochs", "max_steps", "precision", "accumulate_grad_batches", "num_devices",
                     "num_nodes", "gradient_clip_val", "gradient_clip_algorithm", "check_val_every_n_epoch",
                     "val_check_interval")
_CHECKPOINT_SETTINGS = ("monitor", "mode", "save_top_k", "save_last", "save_weights_only", "dirpath",
                        "filename", "every_n_epochs")


def _described(obj: Any) -> dict[str, Any]:
    """A module or datamodule: its class and its saved hyperparameters (``save_hyperparameters``)."""
    hparams = getattr(obj, "hparams", None)
    return {"class": f"{type(obj).__module__}.{type(obj).__qualname__}",
            "hparams": json_safe(dict(hparams)) if isinstance(hparams, Mapping) else {}}


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _settings(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: json_safe(getattr(obj, name)) for name in names if hasattr(obj, name)}


def run_config(trainer: Any, module: Any, namespace: str, checkpoint: Any | None) -> dict[str, Any]:
    """Build the ``config_dict`` of a run's model.

    Args:
        trainer: The trainer.
        module: The LightningModule.
        namespace: ``"lightning.pytorch"`` or ``"pytorch_lightning"``.
        checkpoint: The ModelCheckpoint whose saves the model holds (``None``: the final model).

    Returns:
        ``{"module": {...}, "datamodule": {...}, "trainer": {...}, "checkpoint": {...}, "versions": {...}}``.
    """
    config: dict[str, Any] = {"module": _described(module)}
    datamodule = getattr(trainer, "datamodule", None)
    if datamodule is not None:
        config["datamodule"] = _described(datamodule)
    config["trainer"] = _settings(trainer, _TRAINER_SETTINGS)
    for name in ("strategy", "accelerator"):
        if getattr(trainer, name, None) is not None:
            config["trainer"][name] = type(getattr(trainer, name)).__name__
    if checkpoint is not None:
        config["checkpoint"] = _settings(checkpoint, _CHECKPOINT_SETTINGS)
    config["versions"] = {"namespace": namespace, "lightning": _version(namespace.split(".")[0].replace(
        "_", "-")), "torch": _version("torch")}
    return config


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


def discover_labels(module: Any, datamodule: Any) -> tuple[dict[str, int] | None, str | None]:
    """Find a label enumeration in the usual places (see :func:`modelyard.find_labels`)."""
    return find_labels(_sources(module, datamodule))


def output_count(module: Any, datamodule: Any) -> tuple[int | None, str | None]:
    """Return the number of outputs a run declares (``num_classes`` and the like), and where it was found."""
    return find_output_count(_sources(module, datamodule))
