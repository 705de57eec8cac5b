"""Distributed training into a team registry (issue 9): PostgreSQL + an S3 bucket (moto), 2 CPU processes.

Each run must record exactly one model, one version per checkpoint, all ``ready``, and the bytes read back
from the bucket must equal the checkpoint files the framework wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import modelyard
from modelyard import Model
from modelyard.testing import reset_state

HERE = Path(__file__).resolve().parent


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def team_env(postgres_registry_url: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """What a team job sees: the shared PostgreSQL registry and the bucket as default destination."""
    monkeypatch.setenv("MODELYARD_DEFAULT_OUTPUT_URI", f"{s3_bucket}/team")
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def stored_in_bucket(model: Model, bucket: str) -> None:
    for v in model.versions:
        assert v.uri.startswith(f"{bucket}/team/"), v.uri
        assert v.state == "ready" and v.sha256 and v.size, (v.version, v.state, v.error)


@pytest.mark.slow
def test_hf_trainer_under_torchrun_into_postgres_and_s3(tmp_path: Path, team_env: dict[str, str],
                                                         s3_bucket: str) -> None:
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=0",
         "--rdzv_backend=c10d", "--rdzv_endpoint=localhost:0", str(HERE / "_hf_torchrun.py"), str(out)],
        env=team_env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]

    reports = sorted((json.loads(p.read_text()) for p in out.glob("rank-*.json")), key=lambda r: r["rank"])
    assert [(r["rank"], r["world"], r["zero"]) for r in reports] == [(0, 2, True), (1, 2, False)]
    assert reports[1]["model_id"] is None
    reset_state()
    (model,) = Model.query_models()  # exactly one model for the run, whatever the number of processes
    assert model.id == reports[0]["model_id"] and model.name == "team-bert"
    assert model.labels == {"negative": 0, "positive": 1}
    versions = model.versions
    assert [(v.version, v.iteration) for v in versions] == [(1, 2), (2, 4), (3, 6)]  # one per checkpoint
    stored_in_bucket(model, s3_bucket)
    for v in versions:  # read back from the bucket (verified download) and compare with what the Trainer wrote
        folder = Path(str(model.get_weights_package(return_path=True, raise_on_error=True, version=v.version)))
        written = out / f"checkpoint-{v.iteration}"
        assert sha(folder / "model.safetensors") == sha(written / "model.safetensors")
        assert (folder / "config.json").read_text() == (written / "config.json").read_text()
    assert modelyard.Model(model.id).url == versions[-1].uri


@pytest.mark.slow
def test_lightning_ddp_into_postgres_and_s3(tmp_path: Path, team_env: dict[str, str], s3_bucket: str) -> None:
    pytest.importorskip("modelyard_lightning")
    import torch
    from safetensors.torch import load_file

    ckpt = tmp_path / "ckpt"
    env = {**team_env, "PYTHONWARNINGS": "ignore"}
    env.pop("LOCAL_RANK", None)
    done = subprocess.run([sys.executable, str(HERE / "_lightning_ddp.py"), str(ckpt), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = {r["rank"]: r for r in (json.loads(line.split(" ", 1)[1]) for line in done.stdout.splitlines()
                                      if line.startswith("RESULT "))}
    assert set(results) == {0, 1} and results[1]["models"] == []  # only the global-zero rank records
    reset_state()
    (model,) = Model.query_models()
    assert [model.id] == results[0]["models"] and model.name == "team-lightning"
    assert model.labels == {"a": 0, "b": 1, "c": 2}
    local = sorted(ckpt.glob("*.ckpt"))
    assert len(local) == 3  # one per epoch (save_top_k=-1)
    versions = model.versions
    assert [v.version for v in versions] == [1, 2, 3]  # one version per checkpoint file, none twice
    assert [v.iteration for v in versions] == sorted(v.iteration for v in versions)
    assert versions[-1].iteration == results[0]["step"]
    stored_in_bucket(model, s3_bucket)
    for v, written in zip(versions, local, strict=True):
        folder = Path(str(model.get_weights_package(return_path=True, raise_on_error=True, version=v.version)))
        (stored_ckpt,) = folder.glob("*.ckpt")
        assert sha(stored_ckpt) == sha(written)  # the bytes Lightning wrote, read back from the bucket
        state = torch.load(written, map_location="cpu", weights_only=True)["state_dict"]
        tensors = load_file(folder / "model.safetensors")
        assert set(tensors) == set(state)
        assert all(torch.equal(tensors[k], state[k]) for k in state)
