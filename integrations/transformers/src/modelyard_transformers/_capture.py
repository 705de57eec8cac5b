"""What of a Trainer run is worth recording: checkpoint files, scrubbed training arguments, labels.

Pure functions over plain data, so they are tested without running a Trainer; importing this module does not
import transformers or torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from enum import Enum
from typing import Any

import modelyard

#: Never stored: ``training_args.bin`` pickles every TrainingArguments field, ``hub_token`` included, and
#: neither ``from_pretrained`` nor resuming reads it (the scrubbed arguments are in each version's metadata).
ALWAYS_EXCLUDED = ("training_args.bin",)
#: What a checkpoint holds only to resume training (Trainer, Accelerate, DeepSpeed and FSDP names), and every
#: pickle-based file, which a safetensors-only reader never loads. ``*`` matches across ``/``.
TRAINING_STATE = (
    "trainer_state.json", "optimizer.pt", "optimizer.bin", "scheduler.pt", "scaler.pt", "rng_state*.pth",
    "latest", "zero_to_fp32.py", "global_step*", "pytorch_model_fsdp_*", "optimizer_*",
    "*.bin", "*.pt", "*.pth", "*.pkl", "*.ckpt",
)

#: A field whose name matches is removed from the recorded arguments, at any depth.
_SECRET_NAME = re.compile(r"token|secret|passw|key|credential|auth", re.IGNORECASE)
#: A string value that looks like a credential (a Hugging Face token, or a URL with a password) is removed
#: too, whatever its field is called.
_SECRET_VALUE = re.compile(r"\bhf_[A-Za-z0-9]{20,}|://[^/\s:@]+:[^/\s@]+@")
_DEFAULT_LABEL = re.compile(r"LABEL_(\d+)")


def excluded_files(include_training_state: bool) -> list[str]:
    """Return the ``exclude=`` patterns for a checkpoint folder's package.

    Args:
        include_training_state: Keep what resuming needs (optimizer, scheduler, RNG and trainer state).
            ``False`` keeps only what ``from_pretrained`` needs: weights, configs, tokenizer and processor
            files.

    Returns:
        ``fnmatch`` patterns of package names.
    """
    return list(ALWAYS_EXCLUDED) if include_training_state else [*ALWAYS_EXCLUDED, *TRAINING_STATE]


def scrub_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Return training arguments fit to store: secrets removed, every value JSON-safe.

    Every field whose name contains ``token``, ``secret``, ``passw``, ``key``, ``credential`` or ``auth``
    (``hub_token``, ``push_to_hub_token``, ...) is removed at any depth, as is every string that looks like a
    credential. Enums become their values, non-finite floats and unknown objects their text.

    Args:
        arguments: ``TrainingArguments.to_dict()``.

    Returns:
        A new dict.
    """
    scrubbed = _scrub(dict(arguments))
    return scrubbed if isinstance(scrubbed, dict) else {}


_DROP = object()


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > 20:
        return str(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            name = str(key.value if isinstance(key, Enum) else key)
            if _SECRET_NAME.search(name):
                continue
            cleaned = _scrub(item, depth + 1)
            if cleaned is not _DROP:
                out[name] = cleaned
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = [_scrub(item, depth + 1) for item in value]
        return [item for item in items if item is not _DROP]
    if isinstance(value, Enum):
        return _scrub(value.value, depth + 1)
    if isinstance(value, str):
        return _DROP if _SECRET_VALUE.search(value) else value
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return _scrub(str(value), depth + 1)


def labels_from_config(config: Any) -> dict[str, int] | None:
    """Read the label enumeration of a transformers model config.

    ``id2label`` is what the model's output index means, so it comes first; ``label2id`` is used when
    ``id2label`` is missing. The placeholder labels transformers invents (``LABEL_0``, ``LABEL_1``, ...) carry
    no meaning and give ``None``.

    Args:
        config: A ``PretrainedConfig`` (or anything with ``id2label``/``label2id`` attributes).

    Returns:
        Label name to integer id, or ``None`` when the config names no real labels.

    Raises:
        LabelError: The config's labels are not a valid enumeration (for example two ids share a name).
    """
    id2label = getattr(config, "id2label", None)
    label2id = getattr(config, "label2id", None)
    labels: dict[str, int] | None = None
    if isinstance(id2label, Mapping) and id2label:
        labels = modelyard.labels_from_id2label(id2label, "config.id2label")
    elif isinstance(label2id, Mapping) and label2id:
        labels = dict(label2id)
    if not labels or _is_default(labels):
        return None
    return modelyard.validate_labels(labels)


def _is_default(labels: Mapping[Any, Any]) -> bool:
    for name, label_id in labels.items():
        match = _DEFAULT_LABEL.fullmatch(str(name))
        if match is None or int(match.group(1)) != label_id:
            return False
    return True
