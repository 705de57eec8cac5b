"""What this integration reads from Keras: the module (Keras 3 checked), the process index, config and labels."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import modelyard
from modelyard import InvalidArgumentError, LabelError, MissingDependencyError, validate_labels

_INSTALL = "install it with `pip install modelyard-keras` (which pulls `keras>=3`)"


def import_keras() -> Any:
    """Return the ``keras`` module; raise ``MissingDependencyError`` for no Keras, Keras 2 or no backend."""
    try:
        import keras
    except ImportError as e:
        missing = getattr(e, "name", None) or ""
        if missing and missing.split(".")[0] in ("tensorflow", "jax", "torch"):
            backend = os.environ.get("KERAS_BACKEND") or "the one in ~/.keras/keras.json"
            raise MissingDependencyError(
                f"Keras could not load its backend ({backend}): {e}. modelyard-keras never needs TensorFlow; install "
                "the backend you want and select it with KERAS_BACKEND=torch (or jax) before Keras is imported.") from e
        raise MissingDependencyError(f"modelyard_keras needs Keras 3; {_INSTALL}.") from e
    major = str(getattr(keras, "__version__", "0")).split(".", 1)[0]
    if not major.isdigit() or int(major) < 3:
        raise MissingDependencyError(
            f"modelyard_keras needs Keras 3, found keras {getattr(keras, '__version__', '?')}; {_INSTALL}.")
    return keras


def process_index(keras: Any) -> int:
    """Return this process's index in a multi-process run (0 for the chief, and for a single process).

    ``jax.process_index()`` on jax (Keras's distribution API), an initialized ``torch.distributed`` rank on
    torch, else the ``KERAS_DISTRIBUTION_PROCESS_ID`` environment variable Keras documents.
    """
    backend = str(keras.backend.backend())
    if backend == "jax":
        import jax  # already imported by the jax backend

        return int(jax.process_index())
    if backend == "torch":
        import torch.distributed  # already imported by the torch backend

        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return int(torch.distributed.get_rank())
    value = os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID", "").strip()
    return int(value) if value.isdigit() else 0


def json_safe(value: Any) -> Any:
    """Return ``value`` as plain JSON values, never failing: :func:`modelyard.json_safe`, Keras objects as configs."""
    return modelyard.json_safe(value, fallback=lambda v: import_keras().saving.serialize_keras_object(v))


def _guarded(what: str, fn: Any) -> Any:
    try:
        return fn()
    except Exception as e:  # subclassed models may not implement get_config: record why, keep training
        return {"error": f"{what} failed: {type(e).__name__}: {json_safe(str(e))[:200]}"}


def run_config(model: Any, params: Mapping[str, Any] | None, callback: Mapping[str, Any]) -> dict[str, Any]:
    """Collect what describes a ``fit`` (JSON-safe): Keras, backend, architecture, compile and fit settings."""
    keras = import_keras()
    compile_config = _guarded("model.get_compile_config()", model.get_compile_config)
    if compile_config is None and getattr(model, "optimizer", None) is not None:
        compile_config = {"optimizer": _guarded("optimizer.get_config()", model.optimizer.get_config)}
    return dict(json_safe({
        "framework": "keras", "keras_version": str(keras.__version__), "backend": str(keras.backend.backend()),
        "model": {"class_name": type(model).__name__, "module": type(model).__module__, "name": str(model.name),
                  "config": _guarded("model.get_config()", model.get_config)},
        "compile": compile_config, "fit": dict(params or {}), "callback": dict(callback)}))


@dataclass(frozen=True)
class Labels:
    """Labels, where they came from, how many outputs they describe; ``positional``: vocabulary positions."""

    mapping: dict[str, int]
    source: str
    size: int
    positional: bool = False


def _names(value: Any, what: str) -> Labels:
    if isinstance(value, Mapping):
        raise LabelError(f"{what} must be a list of class names, not a {type(value).__name__}.")
    mapping = modelyard.labels_from(value, what)
    return Labels(mapping, what, len(mapping))


def labels_from_arguments(class_names: Any = None, label_enumeration: Any = None, dataset: Any = None
                   ) -> Labels | None:
    """Resolve the labels the user gave, directly or through a dataset's ``class_names``.

    Raises:
        InvalidArgumentError: Both ``class_names`` and ``label_enumeration`` were given.
        LabelError: Invalid labels, a dataset without ``class_names``, or one disagreeing with ``class_names``.
    """
    if class_names is not None and label_enumeration is not None:
        raise InvalidArgumentError("pass class_names or label_enumeration, not both")
    labels = _names(class_names, "class_names") if class_names is not None else None
    if label_enumeration is not None:
        if not isinstance(label_enumeration, Mapping):
            raise LabelError("label_enumeration must be a mapping of label name to integer id, not "
                             f"{type(label_enumeration).__name__}.")
        mapping = validate_labels(label_enumeration)
        labels = Labels(mapping, "label_enumeration", max(mapping.values(), default=-1) + 1)
    if dataset is not None:
        if getattr(dataset, "class_names", None) is None:
            raise LabelError(f"dataset= was given a {type(dataset).__name__} without a class_names attribute "
                             "(keras.utils.image_dataset_from_directory and text_dataset_from_directory set "
                             "one); pass class_names=[...] instead.")
        found = _names(dataset.class_names, "dataset.class_names")
        if labels is not None and labels.mapping != found.mapping:
            raise LabelError(f"dataset.class_names {list(found.mapping)} disagree with {labels.source} "
                             f"{labels.mapping}; pass only one of them.")
        labels = labels or found
    return labels


def _outputs(model: Any) -> list[Any]:
    try:
        return list(model.outputs or [])
    except (AttributeError, ValueError):  # subclassed models have no symbolic outputs
        return []


def _output_lookup(model: Any, keras: Any) -> Any | None:
    """Return the StringLookup/IntegerLookup layer that produces the model's (single) output, if any."""
    lookups = keras.layers.StringLookup | keras.layers.IntegerLookup
    layer = model
    for _ in range(10):  # follow nested models down their last layer (Sequential([model, lookup]))
        layers = getattr(layer, "layers", None)
        if not layers:
            break
        outputs = _outputs(layer)
        for candidate in (x for x in layers if isinstance(x, lookups)):
            try:
                produced = candidate.output
            except (AttributeError, ValueError):  # a layer called more than once, or never called
                continue
            if any(produced is out for out in outputs):
                return candidate
        layer = layers[-1]
        if isinstance(layer, lookups):
            return layer
    return None


def labels_from_model(model: Any) -> Labels | None:
    """Read the labels from a StringLookup/IntegerLookup vocabulary at the model's output.

    The ids are vocabulary positions, special tokens included (OOV is a class the model can predict); empty
    tokens (a mask token) have no name: the vocabulary's size, not the set of ids, must match the output.
    """
    layer = _output_lookup(model, import_keras())
    if layer is None:
        return None
    vocabulary = [str(token) for token in layer.get_vocabulary()]
    mapping: dict[str, int] = {}
    for index, token in enumerate(vocabulary):
        if token and token not in mapping:
            mapping[token] = index
    return Labels(validate_labels(mapping), f"the vocabulary of {layer.name!r}", len(vocabulary), positional=True)


def output_size(model: Any) -> int | None:
    """Return the number of classes the model's single output scores, when it can be known."""
    outputs = _outputs(model)
    if len(outputs) > 1:
        return None
    if outputs:
        shape, dtype = tuple(getattr(outputs[0], "shape", ()) or ()), str(getattr(outputs[0], "dtype", ""))
        if len(shape) >= 2 and isinstance(shape[-1], int) and ("float" in dtype or "int" in dtype):
            return int(shape[-1])
    layers = getattr(model, "layers", None) or []
    units = getattr(layers[-1], "units", None) if layers else None
    return int(units) if isinstance(units, int) and not isinstance(units, bool) else None


def check_against_output(labels: Labels, model: Any) -> None:
    """Check that the labels describe the model's output units (see :func:`modelyard.check_labels_fit`)."""
    size = output_size(model)
    if size is not None:
        modelyard.check_labels_fit(labels.mapping, size, labels_from=labels.source,
                                   outputs_from=f"model {model.name!r}",
                                   positions=labels.size if labels.positional else None)
