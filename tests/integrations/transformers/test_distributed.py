"""Two CPU processes under torchrun (gloo): each checkpoint is recorded once, by world process zero."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import modelyard

from ._storage import local_checkpoints, stored_versions

SCRIPT = Path(__file__).with_name("_ddp_script.py")


@pytest.mark.slow
def test_torchrun_two_processes_record_each_checkpoint_once(tmp_path: Path, fresh_home: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "MODELYARD_HOME": str(fresh_home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONWARNINGS": "error"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=0",
         "--rdzv_backend=c10d", "--rdzv_endpoint=localhost:0", str(SCRIPT), str(out)],
        env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]

    reports = sorted((json.loads(p.read_text()) for p in out.glob("rank-*.json")), key=lambda r: r["rank"])
    assert [(r["rank"], r["world"], r["zero"]) for r in reports] == [(0, 2, True), (1, 2, False)]
    assert reports[1]["model_id"] is None
    (model,) = modelyard.Model.query_models()
    assert model.id == reports[0]["model_id"]
    iterations = [v.iteration for v in model.versions]
    assert iterations == [4, 6]  # checkpoints 2, 4, 6 recorded once each; 2 rotated away by save_total_limit
    assert all(v.state == "ready" for v in model.versions)
    assert local_checkpoints(out) == {"checkpoint-4", "checkpoint-6"}
    assert stored_versions(fresh_home, model.id) == {v.version for v in model.versions}
    assert [v.version for v in model.versions] == [2, 3]  # versions 1..3: no checkpoint was recorded twice
