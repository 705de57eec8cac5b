"""Fixtures for the Keras integration: backend choice, warnings Keras cannot avoid, fresh state per test."""

from __future__ import annotations

import os

# Before anything imports keras (conftest modules load before the test modules).
os.environ.setdefault("KERAS_BACKEND", "torch")

import tempfile  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

import modelyard.testing  # noqa: E402

# NumPy 2 warns when it calls an `__array__` without the `copy` keyword. Keras's own convert_to_numpy() and
# Variable.numpy() hit that on the torch backend (torch 2.13's Tensor.__array__ has no `copy`), from
# keras.ops.convert_to_numpy, optimizer.get_config() (via model.get_compile_config() and model.save()) and
# more. Narrow: this message only, and only when raised from Keras's modules. Added as a mark on each test
# here, because marks take precedence over `-W error` given on the command line.
KERAS_NUMPY2_WARNING = pytest.mark.filterwarnings(
    r"ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning:keras\..*")

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(KERAS_NUMPY2_WARNING)


@pytest.fixture(autouse=True)
def fresh_keras_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, modelyard_home: Path) -> Iterator[Path]:
    """A fresh MODELYARD_HOME and modelyard state, Keras session, seed and temp folder for every test.

    ``modelyard_home`` (root conftest) already gives a fresh ``MODELYARD_HOME`` and resets modelyard's state
    before and after; the reset is repeated here so this package holds on its own.
    """
    import keras

    monkeypatch.setenv("MODELYARD_HOME", str(modelyard_home))
    modelyard.testing.reset_state()
    monkeypatch.chdir(tmp_path)
    # The callback's private checkpoint folders go here, so a test can check none is left behind.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    keras.backend.clear_session()
    keras.utils.set_random_seed(1234)
    yield modelyard_home
    modelyard.testing.reset_state()
