"""The read side: a verified local ``.ckpt`` to resume from, and weights into a module without unpickling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard import InvalidArgumentError, Model, NotFoundError
from modelyard import load_weights as load_weights_file

from ._weights import WEIGHTS_NAME

__all__ = ["checkpoint_path", "load_weights"]


def _pick_version(model: Model, version: int | str | None, prefer: str) -> int:
    """Turn ``version`` (a number, ``"best"``, ``"last"`` or ``None``) into a version number."""
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    if version is not None and version not in ("best", "last"):
        raise InvalidArgumentError(f"version must be a version number, 'best', 'last' or None, got "
                                   f"{version!r}")
    ready = [v for v in model.versions if v.state == "ready"]
    tag = version or prefer
    tagged = [v for v in ready if tag in v.tags]
    if tagged:
        return tagged[-1].version
    if version is not None:
        raise NotFoundError(f"model {model.id} ({model.name!r}) has no ready version tagged {tag!r}")
    if not ready:
        raise NotFoundError(f"model {model.id} ({model.name!r}) has no ready weights version yet; if it was "
                            "recorded in this process, call OutputModel.wait_for_uploads() first")
    return ready[-1].version


def _local_version(model: Model, version: int) -> Path:
    """Download (or reuse from the verified cache) one version and return its local file or folder."""
    return Path(str(model.get_weights(raise_on_error=True, version=version)))


def checkpoint_path(model_id: str, version: int | str | None = None) -> str:
    """Return a verified local copy of a version's Lightning ``.ckpt``, to resume training from.

    Example:
        >>> trainer.fit(module, datamodule, ckpt_path=modelyard_lightning.checkpoint_path(model_id))

    The file's size and sha256 are verified against the registry before the path is returned. A ``.ckpt`` is
    a pickle: Lightning unpickles it when it resumes, so resume only from a registry you trust. For
    inference, :func:`load_weights` reads ``model.safetensors`` instead and never unpickles.

    Args:
        model_id: The model a ``ModelyardCallback`` recorded.
        version: A version number, ``"last"`` or ``"best"`` (the versions carrying that tag), or ``None``: the
            version tagged ``last`` if any, else the newest ready one.

    Returns:
        The path of the ``.ckpt`` file (inside modelyard's download cache: read it, do not modify it).

    Raises:
        NotFoundError: No such model or version, the version is not ready, or it holds no ``.ckpt``
            (recorded with ``save_training_state=False``).
        IntegrityError: The downloaded bytes do not match the recorded size or sha256.
    """
    model = Model(model_id)
    number = _pick_version(model, version, "last")
    local = _local_version(model, number)
    if local.is_dir():
        found = sorted(p for p in local.iterdir()
                       if p.suffix == ".ckpt" and p.is_file() and not p.is_symlink())
        if len(found) == 1:
            return str(found[0])
        if len(found) > 1:
            raise InvalidArgumentError(f"model {model_id} version {number} holds several .ckpt files "
                                       f"({', '.join(p.name for p in found)}); it was not recorded by "
                                       "ModelyardCallback")
    raise NotFoundError(f"model {model_id} version {number} holds no Lightning .ckpt (it was recorded with "
                        "save_training_state=False, or not by ModelyardCallback); load its weights with "
                        "modelyard_lightning.load_weights() instead")


def load_weights(module: Any, model_id: str, version: int | str | None = None, strict: bool = True) -> Any:
    """Load a version's ``model.safetensors`` into a module, without unpickling anything.

    The file is verified (size, sha256), its format is read from its magic bytes and validated before
    loading; a pickle posing as ``model.safetensors`` is refused.

    Args:
        module: The ``torch.nn.Module`` (LightningModule) to load into; tensors are copied onto its devices.
        model_id: The model a ``ModelyardCallback`` recorded (or any model whose weights are safetensors).
        version: A version number, ``"best"`` or ``"last"`` (the version carrying that tag), or ``None``: the
            version tagged ``best`` if any, else the newest ready one.
        strict: Passed to ``module.load_state_dict``: every key must match.

    Returns:
        What ``module.load_state_dict`` returns (the missing and unexpected keys).

    Raises:
        NotFoundError: No such model or version, or the version is not ready.
        UnsafeFormatError: The weights file is pickle-based.
        FormatError: The weights file is malformed.
        IntegrityError: The downloaded bytes do not match the recorded size or sha256.
    """
    model = Model(model_id)
    number = _pick_version(model, version, "best")
    local = _local_version(model, number)
    path = local / WEIGHTS_NAME if local.is_dir() else local
    if not path.is_file():
        raise NotFoundError(f"model {model_id} version {number} holds no {WEIGHTS_NAME}")
    tensors = load_weights_file(path, backend="torch")
    return module.load_state_dict(tensors, strict=strict)
