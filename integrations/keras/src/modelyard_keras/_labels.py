"""Where a Keras run's label enumeration comes from, and whether it fits the model's output."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelyard import InvalidArgumentError, LabelError, check_labels_fit, labels_from, validate_labels

from ._keras import import_keras


@dataclass(frozen=True)
class Labels:
    """A label enumeration, where it came from (for messages) and how many output positions it describes.

    ``positional``: the ids are vocabulary positions whose unnamed entries (an empty mask token) have no
    label; the vocabulary's size, not the set of ids, must then match the output.
    """

    mapping: dict[str, int]
    source: str
    size: int
    positional: bool = False


def _names(value: Any, what: str) -> Labels:
    if isinstance(value, Mapping):
        raise LabelError(f"{what} must be a list of class names, not a {type(value).__name__}.")
    mapping = labels_from(value, what)
    return Labels(mapping, what, len(mapping))


def from_arguments(class_names: Any = None, label_enumeration: Any = None, dataset: Any = None
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


def from_model(model: Any) -> Labels | None:
    """Read the labels from a StringLookup/IntegerLookup vocabulary at the model's output.

    The ids are vocabulary positions, special tokens included (the OOV token is a class the model can
    predict); empty tokens (an empty mask token) have no name and are left out.
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
        check_labels_fit(labels.mapping, size, labels_from=labels.source, outputs_from=f"model {model.name!r}",
                         positions=labels.size if labels.positional else None)
