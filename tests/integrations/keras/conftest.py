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


def pytest_configure(config: pytest.Config) -> None:
    # Keras's Variable.__array__ lacks NumPy 2's `copy` keyword, so NumPy warns whenever Keras turns one of
    # its own variables into an array -- which Keras does itself in optimizer.get_config() (reached from
    # model.get_compile_config() and model.save()). Our code converts `variable.value`, never the Variable.
    # Narrow: only this message, only when raised from inside Keras.
    config.addinivalue_line(
        "filterwarnings",
        r"ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning:keras\..*",
    )


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
