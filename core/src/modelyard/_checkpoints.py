"""Reading back what a training run recorded: one rule for picking a version, in every integration."""

from __future__ import annotations

from pathlib import Path

from ._errors import InvalidArgumentError, NotFoundError
from ._model import Model
from ._recording import EXCLUSIVE_TAGS


def pick_version(model: Model, version: int | str | None = None, *, prefer: str | None = None) -> int:
    """Turn a version choice into a version number.

    Args:
        model: The model.
        version: A version number; ``"best"``, ``"last"`` or ``"final"`` (the newest ready version carrying
            that tag); or ``None``: the newest ready version tagged ``prefer`` if any, else the newest ready
            one.
        prefer: The tag ``None`` prefers.

    Returns:
        The version number (not checked to exist when given as a number).

    Raises:
        InvalidArgumentError: ``version`` is none of these.
        NotFoundError: No ready version (carrying the tag).
    """
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    if version is not None and version not in EXCLUSIVE_TAGS:
        raise InvalidArgumentError(f"version must be a version number, {', '.join(map(repr, EXCLUSIVE_TAGS))} "
                                   f"or None, got {version!r}")
    ready = [v for v in model.versions if v.state == "ready"]
    tag = version or prefer
    tagged = [v for v in ready if tag is not None and tag in v.tags]
    if tagged:
        return tagged[-1].version
    if version is not None:
        raise NotFoundError(f"model {model.id} ({model.name!r}) has no ready version tagged {tag!r}")
    if not ready:
        raise NotFoundError(f"model {model.id} ({model.name!r}) has no ready weights version yet; if it was "
                            "recorded in this process, call OutputModel.wait_for_uploads() first")
    return ready[-1].version


def version_file(model_id: str, version: int | str | None = None, member: str | None = None, *,
                 prefer: str | None = None, hint: str = "") -> Path:
    """Download (verified, cached) a version and return its file, or one member of its package.

    Args:
        model_id: The model.
        version: See :func:`pick_version`.
        member: For a package version, the file inside it (``None``: the package's folder).
        prefer: See :func:`pick_version`.
        hint: Appended to the error when the member is missing (why, and what to do instead).

    Raises:
        NotFoundError: No such model, version or member, or the version is not ready.
        IntegrityError: The downloaded bytes do not match the recorded size or sha256.
    """
    model = Model(model_id)
    number = pick_version(model, version, prefer=prefer)
    path = Path(str(model.get_weights(raise_on_error=True, version=number)))
    if path.is_dir() and member is not None:
        path = path / member
        if not path.is_file():
            raise NotFoundError(f"version {number} of model {model_id} ({model.name!r}) holds no {member}{hint}")
    return path
