"""docs/keras.md's Python blocks run as written, given a compiled model and data (the reader's own)."""

from __future__ import annotations

from pathlib import Path

import keras
import pytest

from modelyard.testing import run_python_blocks

from .helpers import make_classifier, make_data

DOC = Path(__file__).resolve().parents[3] / "docs" / "keras.md"


class MyLayer(keras.layers.Layer):
    """Stands for a reader's custom layer class."""


@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_docs_keras_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    x, y = make_data()
    namespace = {"model": make_classifier(), "x": x, "y": y, "MyLayer": MyLayer, "build_model": make_classifier}
    namespace = run_python_blocks(DOC, namespace, min_blocks=2)
    assert isinstance(namespace["model"], keras.Model)
