"""Keras 3: one callback records every checkpoint of model.fit -- weights, config, labels, epoch, metric.

Run: python examples/keras_fit.py
Needs `modelyard-keras` (Keras 3) and one Keras backend: torch or jax. Never TensorFlow. CPU, a few seconds.
"""

from __future__ import annotations

import os

# Keras picks its backend at its first import. The example defaults to torch; `KERAS_BACKEND=jax` works too.
os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from modelyard import Model, Task  # noqa: E402
from modelyard_keras import ModelyardCallback, load_model, load_weights  # noqa: E402

CLASSES = ["circle", "square", "triangle"]


def make_data(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centers = np.random.default_rng(7).normal(size=(len(CLASSES), 8)) * 2
    y = rng.integers(0, len(CLASSES), size=n)
    x = centers[y] + rng.normal(size=(n, 8))
    return x.astype("float32"), y


def build() -> keras.Model:
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(len(CLASSES), activation="softmax")], name="shapes")


def main() -> None:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = make_data(600, rng)
    x_val, y_val = make_data(200, rng)

    model = build()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    Task.init(project_name="examples", task_name="keras-fit")

    # The one line a Keras user adds: keep the 2 best epochs by validation accuracy, with class names.
    callback = ModelyardCallback(class_names=CLASSES, monitor="val_accuracy", keep_top_k=2)
    model.fit(x, y, validation_data=(x_val, y_val), epochs=6, batch_size=32, verbose=0, callbacks=[callback])

    record = Model(str(callback.model_id))
    config = record.config_dict
    print(f"model {record.id} {record.name!r} labels={record.labels}")
    print(f"  architecture: {config['model']['class_name']} with {len(config['model']['config']['layers'])} "
          f"layers, backend {config['backend']}, optimizer {config['compile']['optimizer']['class_name']}")
    for v in record.versions:
        print(f"  version {v.version}: epoch {v.iteration}  {v.metadata['monitor']}={v.metadata['score']:.3f}"
              f"  tags={v.tags}")

    # Read side: the best version into a fresh model, and the full .keras archive (safe_mode=True).
    best = next(v.version for v in record.versions if "best" in v.tags)
    fresh = load_weights(build(), record.id, version=best)
    restored = load_model(record.id, version=best)
    same = np.array_equal(fresh.predict(x_val, verbose=0), restored.predict(x_val, verbose=0))
    accuracy = float((restored.predict(x_val, verbose=0).argmax(axis=1) == y_val).mean())
    print(f"  best version {best}: reloaded accuracy {accuracy:.3f}; load_weights == load_model: {same}")
    assert same, "the two read paths disagree"


if __name__ == "__main__":
    main()
