"""The machine-learning frameworks core must never import at module level, and a probe for them.

The one list (STYLE.md rule 2): ruff's ``banned-module-level-imports`` in the root ``pyproject.toml`` repeats
it because ruff cannot import it, and ``tests/core/test_architecture.py`` checks the two agree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping

__all__ = ["FRAMEWORK_MODULES", "frameworks_imported_by"]

#: Top-level modules of the frameworks modelyard integrates with; ``import modelyard`` loads none of them.
FRAMEWORK_MODULES = ("torch", "keras", "lightning", "pytorch_lightning", "transformers", "tensorflow", "jax")


def frameworks_imported_by(code: str, *, modules: tuple[str, ...] = FRAMEWORK_MODULES,
                           env: Mapping[str, str] | None = None, timeout: float = 120) -> list[str]:
    """Run ``code`` in a fresh interpreter and return which of ``modules`` it left in ``sys.modules``.

    A fresh interpreter, because the test process itself has usually imported some framework already. It
    gets this process's ``sys.path`` (so a checkout on ``PYTHONPATH`` is what is probed).

    Args:
        code: Python source, e.g. ``"import modelyard"``.
        modules: The top-level module names to look for.
        env: Extra environment variables for the child.
        timeout: Seconds before the child is killed.

    Returns:
        The names found, in the order of ``modules``.

    Raises:
        AssertionError: The code failed; the message holds its stderr.
    """
    probe = f"{code}\nimport json as _j, sys as _s\nprint(_j.dumps([m for m in {list(modules)!r} if m in _s.modules]))"
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), **(env or {})}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=environ,
                            timeout=timeout)
    assert result.returncode == 0, f"the probe failed:\n{result.stderr}"
    return list(json.loads(result.stdout.strip().splitlines()[-1]))
