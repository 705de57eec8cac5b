"""Label enumerations from every source, and their check against the model's output units."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest

from modelyard import InvalidArgumentError, LabelError, Model
from modelyard_keras import ModelyardCallback

from .helpers import CLASS_NAMES, VocabularyHead, fit, make_classifier, make_data


class NamedDataset(keras.utils.PyDataset):
    """A Keras dataset carrying class_names, as keras.utils.image_dataset_from_directory's result does."""

    def __init__(self, class_names: list[str], batches: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.class_names = class_names
        self.x, self.y = make_data(16 * batches)
        self.batches = batches

    def __len__(self) -> int:
        return self.batches

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        window = slice(16 * index, 16 * (index + 1))
        return self.x[window], self.y[window]


def labels_of(callback: ModelyardCallback) -> dict[str, int]:
    return Model(str(callback.model_id)).labels


def test_class_names() -> None:
    callback = ModelyardCallback(class_names=CLASS_NAMES)
    fit(make_classifier(), callback, epochs=1)
    assert labels_of(callback) == {"cat": 0, "dog": 1, "bird": 2}


def test_label_enumeration() -> None:
    callback = ModelyardCallback(label_enumeration={"bg": 0, "person": 1, "car": 2})
    fit(make_classifier(), callback, epochs=1)
    assert labels_of(callback) == {"bg": 0, "person": 1, "car": 2}


def test_dataset_class_names() -> None:
    data = NamedDataset(["ant", "bee", "wasp"])
    callback = ModelyardCallback(dataset=data)
    make_classifier().fit(data, epochs=1, verbose=0, callbacks=[callback])
    assert labels_of(callback) == {"ant": 0, "bee": 1, "wasp": 2}


def test_string_lookup_vocabulary_at_the_output() -> None:
    callback = ModelyardCallback(save_weights_only=True)
    fit(make_classifier(head=VocabularyHead(["[UNK]", "left", "right"])), callback, epochs=1)
    assert labels_of(callback) == {"[UNK]": 0, "left": 1, "right": 2}


def test_explicit_labels_win_over_the_vocabulary() -> None:
    callback = ModelyardCallback(class_names=["x", "y", "z"], save_weights_only=True)
    fit(make_classifier(head=VocabularyHead(["[UNK]", "left", "right"])), callback, epochs=1)
    assert labels_of(callback) == {"x": 0, "y": 1, "z": 2}


def test_no_labels_when_none_is_known() -> None:
    callback = ModelyardCallback()
    fit(make_classifier(), callback, epochs=1)
    assert labels_of(callback) == {}


@pytest.mark.parametrize("kwargs", [
    {"class_names": ["cat", "dog"]},
    {"class_names": ["a", "b", "c", "d"]},
    {"label_enumeration": {"a": 0, "b": 1, "c": 3}},
    {"dataset": NamedDataset(["one", "two"])},
])
def test_labels_that_do_not_fit_the_output_units_fail_when_training_starts(kwargs: dict) -> None:
    callback = ModelyardCallback(**kwargs)
    with pytest.raises(LabelError, match=r"model 'tiny' has 3 output units.*ids 0\.\.2"):
        fit(make_classifier(), callback, epochs=1)
    assert Model.query_models() == []  # nothing recorded: the check runs before the model is created


def test_vocabulary_that_does_not_fit_the_output_fails() -> None:
    callback = ModelyardCallback()
    with pytest.raises(LabelError, match="vocabulary"):
        fit(make_classifier(head=VocabularyHead(["[UNK]", "left"])), callback, epochs=1)


def test_binary_sigmoid_takes_two_labels() -> None:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")], name="binary")
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    callback = ModelyardCallback(class_names=["negative", "positive"])
    x, y = make_data(32, classes=2)
    model.fit(x, y.astype("float32"), epochs=1, verbose=0, callbacks=[callback])
    assert labels_of(callback) == {"negative": 0, "positive": 1}


@pytest.mark.parametrize("kwargs, error, match", [
    ({"class_names": ["a", "a"]}, LabelError, "more than once"),
    ({"class_names": "abc"}, LabelError, "list of class names"),
    ({"class_names": ["a", ""]}, LabelError, "non-empty"),
    ({"label_enumeration": {"a": True}}, LabelError, "integers"),
    ({"label_enumeration": {"a": 0, "b": 0}}, LabelError, "share the id"),
    ({"label_enumeration": ["a"]}, LabelError, "mapping"),
    ({"class_names": ["a"], "label_enumeration": {"a": 0}}, InvalidArgumentError, "not both"),
    ({"dataset": object()}, LabelError, "without a class_names"),
    ({"class_names": ["a", "b"], "dataset": NamedDataset(["b", "a"])}, LabelError, "disagree"),
])
def test_invalid_labels_fail_in_the_constructor(kwargs: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        ModelyardCallback(**kwargs)
