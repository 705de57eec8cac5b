"""Fixtures for core tests: a fresh registry, storage folder and plugin manager per test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import modelyard


@pytest.fixture(autouse=True)
def work_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, modelyard_home: Path) -> Path:
    """Run each core test in its own folder, on the fresh home from the root conftest."""
    monkeypatch.chdir(tmp_path)
    return modelyard_home


@pytest.fixture
def task() -> modelyard.Task:
    return modelyard.Task.init(project_name="proj", task_name="run")


@pytest.fixture
def make_weights(tmp_path: Path):
    counter = iter(range(10_000))

    def make(name: str = "model.safetensors", value: float | None = None, shape: tuple[int, ...] = (4, 4)) -> Path:
        n = next(counter)
        path = tmp_path / "src" / f"{n}" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        modelyard.save_safetensors({"w": np.full(shape, n if value is None else value, np.float32)}, path)
        return path

    return make
