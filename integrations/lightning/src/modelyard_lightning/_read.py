"""The read side: a verified local ``.ckpt`` to resume from, and weights into a module without unpickling."""

from __future__ import annotations

from typing import Any

from modelyard import BEST_TAG, LAST_TAG, InvalidArgumentError, NotFoundError, version_file
from modelyard import load_weights as load_file

__all__ = ["checkpoint_path", "load_weights"]

#: The state dict of each version, loadable without unpickling (``module.load_state_dict``, strict).
WEIGHTS_NAME = "model.safetensors"


def checkpoint_path(model_id: str, version: int | str | None = None) -> str:
    """Return a verified local copy of a version's ``.ckpt``: ``trainer.fit(..., ckpt_path=checkpoint_path(id))``.

    A ``.ckpt`` is a pickle that Lightning unpickles when it resumes: resume only from a registry you trust.
    :func:`load_weights` reads ``model.safetensors`` instead and never unpickles.

    Args:
        model_id: The model a ``ModelyardCallback`` recorded.
        version: A version number, ``"last"``, ``"best"`` or ``"final"``, or ``None``: the version tagged
            ``last``, else the newest ready one (see :func:`modelyard.pick_version`).

    Returns:
        The ``.ckpt``'s path, inside modelyard's verified download cache (read it, do not modify it).

    Raises:
        NotFoundError: No such model or version, it is not ready, or it holds no ``.ckpt``.
        IntegrityError: The downloaded bytes do not match the recorded size or sha256.
    """
    local = version_file(model_id, version, prefer=LAST_TAG)
    found = sorted(p for p in local.iterdir() if p.suffix == ".ckpt" and p.is_file() and not p.is_symlink()) \
        if local.is_dir() else []
    if len(found) != 1:
        if found:
            raise InvalidArgumentError(f"model {model_id} holds several .ckpt files; it was not recorded by "
                                       "ModelyardCallback")
        raise NotFoundError(f"model {model_id} version {version or 'last'} holds no Lightning .ckpt (recorded "
                            "with save_training_state=False, or not by ModelyardCallback); load its weights with "
                            "modelyard_lightning.load_weights() instead")
    return str(found[0])


def load_weights(module: Any, model_id: str, version: int | str | None = None, strict: bool = True) -> Any:
    """Load a version's ``model.safetensors`` into a module (verified, format read from its bytes, no pickle).

    Args:
        module: The ``torch.nn.Module`` (LightningModule) to load into.
        model_id: The model a ``ModelyardCallback`` recorded (or any model whose weights are safetensors).
        version: A version number or tag, or ``None``: the version tagged ``best``, else the newest ready one.
        strict: Passed to ``module.load_state_dict``: every key must match.

    Returns:
        What ``module.load_state_dict`` returns (the missing and unexpected keys).

    Raises:
        NotFoundError: No such model or version, or the version is not ready.
        UnsafeFormatError: The weights file is pickle-based. FormatError: it is malformed.
        IntegrityError: The downloaded bytes do not match the recorded size or sha256.
    """
    local = version_file(model_id, version, prefer=BEST_TAG)
    path = local / WEIGHTS_NAME if local.is_dir() else local
    if not path.is_file():
        raise NotFoundError(f"model {model_id} version {version or 'best'} holds no {WEIGHTS_NAME}")
    return module.load_state_dict(load_file(path, backend="torch"), strict=strict)
