"""Read models back: find the newest model of a project, list its versions, load its weights safely.

Run after another example, e.g.: python examples/custom_loop.py && python examples/read_back.py
"""

from __future__ import annotations

import sys

import modelyard
from modelyard import InputModel, Model


def main(project: str = "examples") -> None:
    models = Model.query_models(project_name=project)
    if not models:
        sys.exit(f"no models in project {project!r} yet: run examples/custom_loop.py first")
    newest = InputModel(models[0].id)
    print(f"{newest.name} ({newest.id}), labels {newest.labels}")
    for v in newest.versions:
        print(f"  v{v.version} iteration={v.iteration} state={v.state} size={v.size} sha256={v.sha256[:12]}")
    path = newest.get_weights(raise_on_error=True)  # downloaded into the cache, size and sha256 verified
    if newest.versions[-1].package_format:
        print(f"  package at {path}")
        return
    print(f"  format: {modelyard.sniff_format(path)} (from magic bytes)")
    tensors = modelyard.load_weights(path)  # safetensors only: a pickle here would be refused
    for name, array in tensors.items():
        print(f"  {name}: {tuple(array.shape)} {array.dtype}")


if __name__ == "__main__":
    main(*sys.argv[1:])
