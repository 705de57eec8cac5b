"""A module's state dict as ``model.safetensors``: the one framework-specific serialization step.

The file holds exactly the state dict's tensors under their own names, so it loads back with
``module.load_state_dict`` (strict) after :func:`modelyard.load_weights` validated it, with no unpickling.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

WEIGHTS_NAME = "model.safetensors"


def write_state_dict(state_dict: Mapping[str, Any], folder: str | os.PathLike[str]) -> Path:
    """Write a state dict's tensors to ``folder/model.safetensors`` and return the path.

    Every name gets its own CPU copy: tied weights (one storage, two names) are stored once per name and load
    back with ``strict=True``; bfloat16 and float8 keep their dtype. Non-tensor entries (a module's extra
    state) are skipped: they are in the ``.ckpt``.
    """
    import torch
    from safetensors.torch import save_file

    tensors = {name: value.detach().to("cpu", copy=True).contiguous() for name, value in state_dict.items()
               if isinstance(name, str) and isinstance(value, torch.Tensor) and not value.is_meta}
    path = Path(folder) / WEIGHTS_NAME
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path
