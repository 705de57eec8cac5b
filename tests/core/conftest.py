"""Fixtures for core tests: a fresh registry, storage folder and plugin manager per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import modelyard
from modelyard.testing import isolated_state


@pytest.fixture(autouse=True)
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    monkeypatch.chdir(tmp_path)
    with isolated_state(home) as path:
        yield path


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
