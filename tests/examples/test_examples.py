"""Every example runs as written, on CPU, on a fresh embedded registry (issue 8: examples never rot)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NEEDS = {"torch_loop.py": "torch", "lightning_train.py": "lightning", "keras_fit.py": "keras",
         "transformers_trainer.py": "transformers"}


def run(script: str, home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELYARD_HOME": str(home), "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "torch"),
           "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.py")
                                          if p.name not in ("run_all.py", "read_back.py")))
def test_example_runs(script: str, modelyard_home: Path, tmp_path: Path) -> None:
    if script in NEEDS:
        pytest.importorskip(NEEDS[script])
    result = run(script, modelyard_home, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    listing = subprocess.run([sys.executable, "-m", "modelyard", "models", "list", "--json"], capture_output=True,
                             text=True, env={**os.environ, "MODELYARD_HOME": str(modelyard_home)})
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.count('"id"') >= 1, "the example registered no model"


def test_read_back_after_custom_loop(modelyard_home: Path, tmp_path: Path) -> None:
    assert run("custom_loop.py", modelyard_home, tmp_path).returncode == 0
    result = run("read_back.py", modelyard_home, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "format: safetensors" in result.stdout


def test_run_all_runs_what_is_installed(modelyard_home: Path, tmp_path: Path) -> None:
    result = run("run_all.py", modelyard_home, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "== custom_loop.py" in result.stdout and "== read_back.py" in result.stdout
