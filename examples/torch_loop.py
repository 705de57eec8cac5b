"""A custom PyTorch loop: a tiny MLP on synthetic data, one checkpoint per epoch, reloaded without pickle.

Run: python examples/torch_loop.py   (needs torch: pip install torch==2.13.0)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

import modelyard
from modelyard import Model, OutputModel, Task

CLASSES = ["negative", "positive"]


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(256, 16)
    y = (x[:, 0] + x[:, 1] > 0).long()
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, len(CLASSES)))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    config = {"hidden": 32, "lr": 0.5, "epochs": 3, "optimizer": "SGD"}

    task = Task.init(project_name="examples", task_name="torch-loop")
    out = OutputModel(task, config_dict=config, label_enumeration=modelyard.labels_from_names(CLASSES),
                      framework="PyTorch")
    workdir = Path(tempfile.mkdtemp(prefix="torch-loop-"))
    for epoch in range(config["epochs"]):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        path = workdir / f"epoch-{epoch}.safetensors"
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
        out.update_weights(str(path), iteration=epoch, metadata={"monitor": "loss", "score": float(loss)})
        print(f"epoch {epoch}: loss {loss.item():.4f}")
    task.close()

    fresh = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, len(CLASSES)))
    path = Model(out.id).get_weights(raise_on_error=True)
    fresh.load_state_dict(modelyard.load_weights(path, backend="torch"))
    assert torch.equal(fresh(x), net(x)), "the reloaded model predicts differently"
    print(f"model {out.id}: {len(Model(out.id).versions)} versions, reloaded and verified from {path}")


if __name__ == "__main__":
    main()
