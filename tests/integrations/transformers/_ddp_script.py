"""Run under ``torchrun --nproc_per_node=2``: a tiny DDP (gloo, CPU) Trainer run with ModelyardCallback.

Each process writes ``rank-<n>.json`` into the output folder, saying whether it recorded a model.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repo root (tests/ is a namespace)

from tests.integrations.transformers._tiny import run  # noqa: E402

import modelyard  # noqa: E402
from modelyard_transformers import ModelyardCallback  # noqa: E402


def main(output_dir: str) -> None:
    callback = ModelyardCallback()
    trainer = run(Path(output_dir), [callback], max_steps=6, save_steps=2, save_total_limit=2,
                  ddp_backend="gloo")
    model_id = callback.output_model.id if callback.output_model is not None else None
    if model_id is not None:
        modelyard.OutputModel.wait_for_uploads()
    rank = int(os.environ.get("RANK", "0"))
    report = {"rank": rank, "world": trainer.args.world_size, "model_id": model_id,
              "zero": trainer.state.is_world_process_zero}
    Path(output_dir, f"rank-{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
