"""The configuration record never fails and is always JSON."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest

from modelyard_keras._keras import json_safe


def test_json_safe_handles_what_keras_configs_hold() -> None:
    loop: list = []
    loop.append(loop)
    value = {
        "tuple": (1, 2), "set": {3, 1}, "nan": math.nan, "inf": -math.inf, "np": np.float32(0.5),
        "npint": np.int64(7), "small": np.arange(3), "big": np.zeros((100, 100)), "loop": loop,
        1: "int key", "obj": object(), "layer": keras.layers.Dense(2), "surrogate": "a\udcffb",
    }
    out = json_safe(value)
    json.dumps(out, allow_nan=False)  # valid strict JSON
    assert out["tuple"] == [1, 2] and out["set"] == [1, 3]
    assert out["nan"] == "nan" and out["inf"] == "-inf"
    assert out["np"] == 0.5 and out["npint"] == 7 and out["small"] == [0, 1, 2]
    assert out["big"].startswith("<array shape=(100, 100)")
    assert out["loop"] == ["<circular reference>"]
    assert out["1"] == "int key"
    assert out["obj"].startswith("<object object")
    assert out["layer"]["class_name"] == "Dense"
    assert out["surrogate"] == "a?b"


def test_a_subclassed_model_without_get_config_still_records() -> None:
    from modelyard import Model
    from modelyard_keras import ModelyardCallback

    class Net(keras.Model):
        def __init__(self, width):  # no **kwargs and no get_config: Keras cannot serialize it
            super().__init__()
            self.dense = keras.layers.Dense(width)

        def call(self, x):
            return self.dense(x)

    net = Net(2)
    net.compile(optimizer="sgd", loss="mse")
    callback = ModelyardCallback(save_weights_only=True)
    net.fit(np.zeros((8, 4), "float32"), np.zeros((8, 2), "float32"), epochs=1, verbose=0,
            callbacks=[callback])
    config = Model(str(callback.model_id)).config_dict
    assert config["model"]["class_name"] == "Net"
    assert config["compile"]["loss"] == "mse"


class Unserializable(keras.Model):
    """A subclassed model Keras cannot serialize: a function argument and no get_config()."""

    def __init__(self, width: int, activation=lambda x: x) -> None:
        super().__init__()
        self.dense = keras.layers.Dense(width)
        self.activation = activation

    def call(self, x):
        return self.activation(self.dense(x))


def test_an_unserializable_model_fails_before_training_unless_weights_only() -> None:
    from modelyard import InvalidArgumentError, Model
    from modelyard_keras import ModelyardCallback, load_weights

    x, y = np.random.default_rng(0).normal(size=(16, 4)).astype("float32"), np.zeros((16, 2), "float32")
    net = Unserializable(2)
    net.compile(optimizer="sgd", loss="mse")
    callback = ModelyardCallback()
    with pytest.raises(InvalidArgumentError, match="save_weights_only=True"):
        net.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    assert Model.query_models() == []

    callback = ModelyardCallback(save_weights_only=True)
    net.fit(x, y, epochs=2, verbose=0, callbacks=[callback])
    fresh = Unserializable(2)
    fresh(x[:1])  # build
    load_weights(fresh, str(callback.model_id))
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), net.predict(x, verbose=0))
