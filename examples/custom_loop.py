"""A custom training loop: train a tiny softmax classifier in NumPy and register it with modelyard.

Run: python examples/custom_loop.py
Needs only the `modelyard` core package (no ML framework).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

import modelyard
from modelyard import Model, OutputModel, Task

CLASSES = ["circle", "square", "triangle"]


def make_data(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centers = rng.normal(size=(len(CLASSES), 8)) * 3
    y = rng.integers(0, len(CLASSES), size=n)
    x = centers[y] + rng.normal(size=(n, 8))
    return x.astype(np.float32), y


def main() -> None:
    rng = np.random.default_rng(0)
    x, y = make_data(512, rng)
    config = {"lr": 0.5, "epochs": 5, "features": 8, "classes": len(CLASSES)}

    task = Task.init(project_name="examples", task_name="custom-loop")
    out = OutputModel(task, config_dict=config, label_enumeration=modelyard.labels_from_names(CLASSES),
                      framework="numpy", tags=["example"])

    w = np.zeros((8, len(CLASSES)), np.float32)
    b = np.zeros(len(CLASSES), np.float32)
    workdir = Path(tempfile.mkdtemp(prefix="custom-loop-"))
    for epoch in range(config["epochs"]):
        logits = x @ w + b
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        grad = p
        grad[np.arange(len(y)), y] -= 1
        w -= config["lr"] * x.T @ grad / len(y)
        b -= config["lr"] * grad.mean(axis=0)
        accuracy = float(((x @ w + b).argmax(axis=1) == y).mean())
        # One line per checkpoint: returns at once, the upload runs in the background.
        path = workdir / f"epoch-{epoch}.safetensors"
        modelyard.save_safetensors({"w": w, "b": b}, path)
        out.update_weights(str(path), iteration=epoch, metadata={"monitor": "accuracy", "score": accuracy})
        print(f"epoch {epoch}: accuracy {accuracy:.3f}")

    task.close()  # waits for the uploads, raises if one failed
    weights = modelyard.load_weights(Model(out.id).get_weights(raise_on_error=True))
    assert np.array_equal(weights["w"], w), "the registered weights differ from the trained ones"
    for model in Model.query_models(project_name="examples"):
        print(f"{model.id}  {model.name:<20} versions={len(model.versions)} labels={model.labels} "
              f"url={model.url}")


if __name__ == "__main__":
    main()
