"""examples/transformers_trainer.py runs as documented: records, reloads with equal logits, resumes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")
pytest.importorskip("modelyard_transformers")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "transformers_trainer.py"


@pytest.mark.slow
def test_transformers_trainer_example(tmp_path: Path) -> None:
    env = {**os.environ, "MODELYARD_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1",
           "TMPDIR": str(tmp_path), "PYTHONWARNINGS": "error"}
    result = subprocess.run([sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "labels {'negative': 0, 'positive': 1}" in result.stdout
    assert "logits equal" in result.stdout
    assert "resumed to step 60" in result.stdout
