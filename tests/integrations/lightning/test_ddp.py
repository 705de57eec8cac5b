"""Under DDP (two CPU processes, gloo) only the global-zero rank records: one model, one version per file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modelyard import Model

SCRIPT = textwrap.dedent('''
    import json, os, sys, warnings
    warnings.simplefilter("ignore")
    sys.path.insert(0, sys.argv[1])
    from integrations.lightning._toy import checkpoint_class, make_trainer, toy_classes
    from modelyard_lightning import ModelyardCallback

    module_class, data_class = toy_classes()
    callback = ModelyardCallback(mirror_retention=False)
    checkpoint = checkpoint_class("lightning.pytorch")(dirpath=sys.argv[2], save_top_k=-1, save_last=True)
    trainer = make_trainer("lightning.pytorch", sys.argv[3], [callback, checkpoint], max_epochs=3,
                           strategy="ddp", accelerator="cpu", devices=2)
    trainer.fit(module_class(class_names=["a", "b", "c"]), data_class())
    print("RESULT", json.dumps({"rank": trainer.global_rank, "models": callback.model_ids,
                                "step": trainer.global_step}), flush=True)
''')


@pytest.mark.slow
def test_ddp_records_once(tmp_path: Path, fresh_modelyard: Path) -> None:
    script = tmp_path / "ddp_run.py"
    script.write_text(SCRIPT)
    tests_root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "MODELYARD_HOME": str(fresh_modelyard), "PYTHONWARNINGS": "ignore"}
    env.pop("LOCAL_RANK", None)
    command = [sys.executable, str(script), str(tests_root), str(tmp_path / "ckpt"), str(tmp_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = [json.loads(line.split(" ", 1)[1])
               for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    by_rank = {r["rank"]: r for r in results}
    assert set(by_rank) == {0, 1}
    assert by_rank[1]["models"] == []  # rank 1 recorded nothing
    (model_id,) = by_rank[0]["models"]
    assert [m.id for m in Model.query_models()] == [model_id]
    model = Model(model_id)
    local = sorted(p.name for p in (tmp_path / "ckpt").glob("*.ckpt"))
    assert len(local) == 4  # three epochs + last.ckpt
    versions = model.versions
    # Exactly one version per save (retention is off, so every save is still there): 3 epochs, 3 x last.ckpt.
    saved = sorted(v.metadata["checkpoint_file"] for v in versions)
    assert saved == sorted([*local[:-1], "last.ckpt", "last.ckpt", "last.ckpt"]), saved
    assert len({v.iteration for v in versions}) == 3
    assert all(v.state == "ready" for v in versions)
    assert model.labels == {"a": 0, "b": 1, "c": 2}
    assert model.config_dict["trainer"]["strategy"] == "DDPStrategy"
    assert model.config_dict["trainer"]["num_devices"] == 2
    assert max(v.iteration for v in versions) == by_rank[0]["step"]
