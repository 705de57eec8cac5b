"""Read side: a recorded checkpoint goes back into a fresh model and predicts exactly the same."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from modelyard import InvalidArgumentError, Model, NotFoundError
from modelyard_keras import ModelyardCallback, load_model, load_weights

from .helpers import VocabularyHead, fit, make_classifier, make_data

Trained = tuple[keras.Model, ModelyardCallback]


@pytest.fixture
def trained() -> Trained:
    model = make_classifier()
    callback = ModelyardCallback(class_names=["cat", "dog", "bird"])
    fit(model, callback, epochs=3)
    return model, callback


def test_load_weights_into_a_fresh_model_predicts_equal(trained: Trained) -> None:
    model, callback = trained
    x, _ = make_data(20, seed=5)
    fresh = make_classifier()  # same architecture; Keras numbers its layers dense_2, dense_3 this time
    assert not np.allclose(fresh.predict(x, verbose=0), model.predict(x, verbose=0))
    assert load_weights(fresh, str(callback.model_id)) is fresh
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), model.predict(x, verbose=0))


def test_load_model_predicts_equal(trained: Trained) -> None:
    model, callback = trained
    x, _ = make_data(20, seed=5)
    loaded = load_model(str(callback.model_id))
    assert loaded.name == "tiny"
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.optimizer.get_config()["name"] == "adam"  # compiled from the recorded compile config


def test_a_specific_version_loads(trained: Trained) -> None:
    model, callback = trained
    x, _ = make_data(20, seed=5)
    first = load_model(str(callback.model_id), version=1)
    assert not np.allclose(first.predict(x, verbose=0), model.predict(x, verbose=0))
    fresh = make_classifier()
    load_weights(fresh, str(callback.model_id), version=1)
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), first.predict(x, verbose=0))


def test_a_different_architecture_is_refused_untouched(trained: Trained) -> None:
    _, callback = trained
    other = make_classifier(classes=4)
    before = [w.copy() for w in other.get_weights()]
    with pytest.raises(InvalidArgumentError, match="do not fit"):
        load_weights(other, str(callback.model_id))
    for a, b in zip(before, other.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_an_unbuilt_model_is_refused(trained: Trained) -> None:
    _, callback = trained
    with pytest.raises(InvalidArgumentError, match="build it first"):
        load_weights(keras.Sequential([keras.layers.Dense(3)]), str(callback.model_id))


def test_load_model_of_a_weights_only_version_says_so() -> None:
    callback = ModelyardCallback(save_weights_only=True)
    fit(make_classifier(head=VocabularyHead(["[UNK]", "a", "b"])), callback, epochs=1)
    with pytest.raises(InvalidArgumentError, match="save_weights_only"):
        load_model(str(callback.model_id))


def test_unknown_model_or_version() -> None:
    with pytest.raises(NotFoundError):
        load_model("0" * 32)
    callback = ModelyardCallback()
    fit(make_classifier(), callback, epochs=1)
    with pytest.raises(ValueError, match="no version 9"):
        load_weights(make_classifier(), str(callback.model_id), version=9)
    assert Model(str(callback.model_id)).versions


def test_a_bfloat16_model_round_trips() -> None:
    keras.config.set_dtype_policy("bfloat16")
    try:
        model = make_classifier()
        callback = ModelyardCallback(save_weights_only=True)
        fit(model, callback, epochs=1)
        fresh = make_classifier()
    finally:
        keras.config.set_dtype_policy("float32")
    load_weights(fresh, str(callback.model_id))
    for a, b in zip(model.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
