"""Fixtures for core tests: a fresh registry, storage folder and plugin manager per test.

The modules in ``BOTH_BACKENDS`` hold the core API's semantics; every test in them runs twice, on the embedded
SQLite registry and on a fresh PostgreSQL schema (skipped with a reason when no server is configured), so
the PostgreSQL registry is held to exactly the same behaviour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import modelyard

#: Core modules whose every test runs on SQLite and on PostgreSQL (issue 9); the others never open a registry
#: (test_cli runs its registry commands on both backends itself).
BOTH_BACKENDS = frozenset({
    "test_faults_concurrency",
    "test_faults_process",
    "test_faults_resources",
    "test_faults_storage",
    "test_output_model",
    "test_security_registry",
    "test_task",
    "test_team",
})


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    if module in BOTH_BACKENDS and "registry_backend" not in metafunc.fixturenames:
        metafunc.parametrize("core_registry", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
                             indirect=True)


@pytest.fixture(autouse=True)
def core_registry(request: pytest.FixtureRequest, modelyard_home: Path) -> str:
    """Point the test at its registry backend before any other fixture opens the registry.

    Autouse, so it is set up before fixtures such as ``task``; parametrised by ``pytest_generate_tests`` for
    the ``BOTH_BACKENDS`` modules, and SQLite (the embedded default) for every other test.

    Returns:
        ``"sqlite"`` or ``"postgres"`` (``MODELYARD_REGISTRY_URL`` set to a fresh, empty schema).
    """
    backend = str(getattr(request, "param", "sqlite"))
    if backend == "postgres":
        request.getfixturevalue("postgres_schema_url")
    return backend


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
