"""A module's state dict as ``model.safetensors``: the one framework-specific serialization step.

The file holds exactly the state dict's tensors under their own names, so it loads back with
``module.load_state_dict`` (strict) after :func:`modelyard.load_weights` validated it, with no unpickling.

Saving happens in two steps so that the training thread only pays for a memory copy: :class:`Snapshot`
copies the tensors into reusable CPU buffers (the weights may change at the next optimizer step), and
:func:`write_tensors` writes those buffers to a file, on the callback's background thread.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

WEIGHTS_NAME = "model.safetensors"


class Snapshot:
    """Reusable CPU buffers holding a copy of a state dict's tensors.

    The buffers are allocated on the first capture and reused while names, shapes and dtypes stay the same,
    so a capture costs one memory copy and no allocation. Every name gets its own buffer: tied weights (one
    storage, two names) are stored once per name and load back with ``strict=True``. bfloat16 and float8
    keep their dtype. Non-tensor entries (a module's extra state) are skipped: they are in the ``.ckpt``.

    The tensors returned by :meth:`capture` are overwritten by the next capture: write them out first.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, Any] = {}

    def capture(self, state_dict: Mapping[str, Any]) -> dict[str, Any]:
        """Copy the state dict's tensors into the buffers and return them (name -> CPU tensor).

        Args:
            state_dict: ``module.state_dict()``, or the ``"state_dict"`` of a checkpoint being saved.

        Returns:
            The buffers, valid until the next capture.
        """
        import torch

        buffers: dict[str, Any] = {}
        for name, value in state_dict.items():
            if not isinstance(name, str) or not isinstance(value, torch.Tensor) or value.is_meta:
                continue
            buffer = self._buffers.get(name)
            if buffer is None or buffer.shape != value.shape or buffer.dtype != value.dtype:
                buffer = torch.empty(value.shape, dtype=value.dtype, device="cpu")
            buffer.copy_(value.detach())
            buffers[name] = buffer
        self._buffers = buffers
        return dict(buffers)


def write_tensors(tensors: Mapping[str, Any], folder: str | os.PathLike[str]) -> Path:
    """Write CPU tensors to ``folder/model.safetensors`` and return the path.

    Args:
        tensors: Name -> contiguous CPU tensor sharing no memory with another (what :class:`Snapshot` gives).
        folder: An existing folder owned by the caller.

    Returns:
        The file written.
    """
    from safetensors.torch import save_file

    path = Path(folder) / WEIGHTS_NAME
    save_file(dict(tensors), str(path), metadata={"format": "pt"})
    return path
