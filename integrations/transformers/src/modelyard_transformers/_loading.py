"""The read side: rebuild a transformers model, or resume a Trainer, from a registry version.

Import-light: transformers is never imported here (the caller passes the class to load with).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import modelyard

FINAL_TAG = "final"
TRAINER_STATE = "trainer_state.json"


def _ready_versions(model: modelyard.Model) -> list[modelyard.ModelVersion]:
    return [v for v in model.versions if v.state == "ready"]


def _package_folder(model: modelyard.Model, version: int) -> Path:
    folder = model.get_weights_package(return_path=True, raise_on_error=True, version=version)
    return Path(str(folder))


def checkpoint_path(model_id: str, version: int | None = None) -> str:
    """Download a recorded Trainer checkpoint, verified, into a fresh folder for ``resume_from_checkpoint``.

    Example:
        >>> trainer.train(resume_from_checkpoint=checkpoint_path(model_id))

    The Trainer then reads the checkpoint's optimizer, scheduler and RNG states, which are pickle-based;
    transformers loads them with ``torch.load(weights_only=True)``. Calling this function is the opt-in.

    Args:
        model_id: The model a ``ModelyardCallback`` recorded.
        version: A specific version (default: the newest ready checkpoint recorded with its training state).

    Returns:
        The folder's path.

    Raises:
        NotFoundError: No such model, no resumable checkpoint, or the version holds no training state
            (recorded with ``include_training_state=False``, or the final ``save_pretrained`` model).
        ValueError: The version cannot be downloaded or fails verification.
    """
    model = modelyard.Model(model_id)
    if version is None:
        candidates = [v for v in _ready_versions(model)
                      if v.package_format and v.metadata.get("training_state") is True]
        if not candidates:
            raise modelyard.NotFoundError(
                f"model {model_id} ({model.name!r}) has no ready checkpoint recorded with its training "
                "state; record with ModelyardCallback(include_training_state=True), or pass version=")
        version = max(candidates, key=lambda v: v.version).version
    folder = _package_folder(model, version)
    if not (folder / TRAINER_STATE).is_file():
        raise modelyard.NotFoundError(
            f"model {model_id} version {version} holds no {TRAINER_STATE}, so the Trainer cannot resume from "
            "it; pick a checkpoint version recorded with include_training_state=True")
    return str(folder)


def from_registry(auto_class: Any, model_id: str, version: int | None = None, **kwargs: Any) -> Any:
    """Load a transformers model from a registry version, from safetensors weights only.

    Example:
        >>> model = from_registry(AutoModelForSequenceClassification, model_id)

    The version's files are downloaded and verified (size and sha256), every ``*.safetensors`` file is
    checked by its magic bytes, and the model is built with ``use_safetensors=True`` and
    ``local_files_only=True``. Remote code is never trusted: custom architectures are refused.

    Args:
        auto_class: The class to load with (``AutoModelForSequenceClassification``, or a model class).
        model_id: The model's id.
        version: A specific version (default: the version tagged ``final``, else the newest ready one).
        **kwargs: Passed on to ``auto_class.from_pretrained`` (``torch_dtype``, ``device_map``, ...).

    Returns:
        The loaded model.

    Raises:
        InvalidArgumentError: ``trust_remote_code`` was asked for, or ``use_safetensors`` turned off.
        UnsafeFormatError: The version holds no safetensors weights, or a ``*.safetensors`` file is not one.
        NotFoundError: No such model or version, or no ready version.
    """
    if kwargs.pop("trust_remote_code", False):
        raise modelyard.InvalidArgumentError(
            "from_registry never trusts remote code: a registry version is untrusted data. Load custom "
            "architectures with their own class instead")
    if kwargs.pop("use_safetensors", True) is not True:
        raise modelyard.InvalidArgumentError("from_registry loads safetensors weights only")
    model = modelyard.Model(model_id)
    if version is None:
        ready = _ready_versions(model)
        final = [v for v in ready if FINAL_TAG in v.tags]
        chosen = max(final or ready, key=lambda v: v.version, default=None)
        if chosen is None:
            raise modelyard.NotFoundError(
                f"model {model_id} ({model.name!r}) has no ready weights version yet")
        version = chosen.version
    folder = _package_folder(model, version)
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise modelyard.UnsafeFormatError(
            f"model {model_id} version {version} holds no *.safetensors weights; from_registry loads nothing "
            "else (pickle-based weights could run code)")
    for path in weights:
        if modelyard.sniff_format(path) != "safetensors":
            raise modelyard.UnsafeFormatError(
                f"{path.name} of model {model_id} version {version} is not a safetensors file (its bytes say "
                f"{modelyard.sniff_format(path)!r}); refusing to load it")
    options: dict[str, Any] = {"local_files_only": True, **kwargs, "use_safetensors": True}
    if _is_auto_class(auto_class):
        # Auto classes would run code named by the config's auto_map if allowed: say no explicitly, so that
        # transformers refuses instead of prompting.
        options["trust_remote_code"] = False
    return auto_class.from_pretrained(str(folder), **options)


def _is_auto_class(cls: Any) -> bool:
    return any(getattr(base, "__name__", "") in ("_BaseAutoModelClass", "_BaseAutoBackboneClass")
               for base in getattr(cls, "__mro__", ()))
