"""Tiny models and data for the Keras integration tests (CPU, milliseconds per epoch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from modelyard import Model

CLASS_NAMES = ["cat", "dog", "bird"]


def make_data(n: int = 96, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A learnable problem: the class is the argmax of a fixed linear map of 4 features."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    w = np.random.default_rng(99).normal(size=(4, classes)).astype("float32")
    return x, np.argmax(x @ w, axis=1).astype("int64")


def make_classifier(classes: int = 3, *, name: str = "tiny", head: keras.layers.Layer | None = None
                    ) -> keras.Model:
    """A compiled 4 -> 8 -> ``classes`` softmax classifier, optionally with ``head`` after the softmax."""
    layers: list[Any] = [keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                         keras.layers.Dense(classes, activation="softmax")]
    if head is not None:
        layers.append(head)
    model = keras.Sequential(layers, name=name)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def fit(model: keras.Model, callback: keras.callbacks.Callback, *, epochs: int = 3, validation: bool = True,
        batch_size: int = 16, **kwargs: Any) -> keras.callbacks.History:
    x, y = make_data()
    if validation:
        kwargs.setdefault("validation_data", make_data(32, seed=1))
    return model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[callback], **kwargs)


def stored_packages(home: Path) -> list[Path]:
    """Every checkpoint package folder in local storage under ``home``."""
    return sorted(p.parent for p in (home / "storage").rglob("model.safetensors"))


def version_files(model_id: str, version: int) -> list[str]:
    folder = Path(str(Model(model_id).get_weights(raise_on_error=True, version=version)))
    return sorted(p.name for p in folder.iterdir())


class VocabularyHead(keras.layers.StringLookup):
    """Stand-in for an inverted ``StringLookup`` at a model's output.

    Keras's lookup layers need TensorFlow to be constructed, and these tests must never import TensorFlow, so
    this subclass skips StringLookup's constructor and passes the probabilities through unchanged. The
    integration sees what it reads from a real one: an instance of ``keras.layers.StringLookup`` at the
    model's output whose ``get_vocabulary()`` names the output positions.
    """

    def __init__(self, vocabulary: list[str], **kwargs: Any) -> None:
        keras.layers.Layer.__init__(self, **kwargs)
        self.vocabulary = list(vocabulary)
        self.invert = True

    # IndexLookup reports its vocabulary's dtype as the layer's dtypes; this stand-in computes in floats.
    @property
    def compute_dtype(self) -> str:
        return str(keras.backend.floatx())

    @property
    def input_dtype(self) -> str:
        return str(keras.backend.floatx())

    @property
    def variable_dtype(self) -> str:
        return str(keras.backend.floatx())

    def get_vocabulary(self, include_special_tokens: bool = True) -> list[str]:
        return list(self.vocabulary)

    def vocabulary_size(self) -> int:
        return len(self.vocabulary)

    def call(self, inputs: Any) -> Any:
        return inputs

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def compute_output_spec(self, inputs: Any) -> Any:
        return keras.KerasTensor(inputs.shape, dtype=inputs.dtype)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "vocabulary": self.vocabulary}
