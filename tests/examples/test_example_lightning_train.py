"""examples/lightning_train.py runs end to end on the CPU and leaves what it promises in the registry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lightning", reason="the example needs lightning: pip install modelyard-lightning")
pytest.importorskip("modelyard_lightning", reason="pip install -e integrations/lightning")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lightning_train.py"


@pytest.mark.slow
def test_lightning_example(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["MODELYARD_HOME"] = str(tmp_path / "home")
    done = subprocess.run([sys.executable, str(EXAMPLE)], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "labels {'circle': 0, 'square': 1, 'triangle': 2}" in done.stdout
    assert "resumed to step 48" in done.stdout
    assert "best weights: accuracy 1.000" in done.stdout
