"""Run every example in order (the README's Quick start demo). Each runs in its own process.

Examples whose framework is not installed are reported and skipped, so this also works with the core only.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: (script, modules it needs)
EXAMPLES = [
    ("custom_loop.py", []),
    ("torch_loop.py", ["torch"]),
    ("lightning_train.py", ["lightning", "modelyard_lightning"]),
    ("keras_fit.py", ["keras", "modelyard_keras"]),
    ("transformers_trainer.py", ["transformers", "modelyard_transformers"]),
    ("read_back.py", []),
]


def main() -> int:
    failed = []
    for script, needs in EXAMPLES:
        missing = [m for m in needs if importlib.util.find_spec(m) is None]
        if not (HERE / script).exists() or missing:
            print(f"== {script}: skipped ({'missing ' + ', '.join(missing) if missing else 'not present'})")
            continue
        print(f"== {script}", flush=True)
        if subprocess.run([sys.executable, str(HERE / script)]).returncode != 0:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
