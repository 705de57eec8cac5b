"""What importing and using the integration pulls in: never TensorFlow; Keras only when actually used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

FRAMEWORKS = ("keras", "torch", "jax", "tensorflow")


def run(code: str, tmp_path: Path, **env: str) -> dict:
    environ = {**os.environ, "MODELYARD_HOME": str(tmp_path / "home"), **env}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            env=environ, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_discovery_imports_no_framework(tmp_path: Path) -> None:
    out = run("""
        import json, sys
        import modelyard, modelyard_keras, modelyard_keras._plugin
        names = modelyard.available_integrations()
        print(json.dumps({"keras": names.get("keras"),
                          "loaded": [m for m in FRAMEWORKS if m in sys.modules]}))
    """.replace("FRAMEWORKS", repr(FRAMEWORKS)), tmp_path)
    assert out["keras"].startswith("modelyard-keras")
    assert out["loaded"] == []


def test_a_full_fit_save_and_reload_never_imports_tensorflow(tmp_path: Path) -> None:
    out = run("""
        import json, sys
        import numpy as np, keras
        from modelyard import get_callback_class
        from modelyard_keras import ModelyardCallback, load_model, load_weights
        assert get_callback_class("keras") is ModelyardCallback
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        x = np.random.rand(32, 4).astype("float32"); y = np.random.randint(0, 3, 32)
        callback = ModelyardCallback(class_names=["a", "b", "c"], keep_top_k=1)
        model.fit(x, y, epochs=2, verbose=0, validation_split=0.25, callbacks=[callback])
        load_weights(model, callback.model_id)
        load_model(callback.model_id)
        tf = sorted(m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow."))
        print(json.dumps({"backend": keras.backend.backend(), "tf": tf}))
    """, tmp_path, KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "torch"))
    assert out["tf"] == []
    assert out["backend"] == os.environ.get("KERAS_BACKEND", "torch")


def test_missing_backend_error_says_what_to_do(tmp_path: Path) -> None:
    pytest.importorskip("keras")
    if any(p for p in sys.path if (Path(p) / "tensorflow").is_dir()):
        pytest.skip("tensorflow is installed here, so Keras's tensorflow backend would load")
    code = """
        import json
        from modelyard import MissingDependencyError
        try:
            import modelyard_keras
            modelyard_keras.ModelyardCallback
        except MissingDependencyError as e:
            print(json.dumps({"error": str(e)}))
    """
    out = run(code, tmp_path, KERAS_BACKEND="tensorflow")
    assert "KERAS_BACKEND=torch" in out["error"]
