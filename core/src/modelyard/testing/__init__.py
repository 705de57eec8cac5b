"""Test support for modelyard and its integrations.

- state: :func:`reset_state`, :func:`isolated_state` (a fresh registry and plugin manager per test);
- :data:`FRAMEWORK_MODULES` and :func:`frameworks_imported_by`: the one list of frameworks core never imports,
  and a fresh-interpreter probe for them;
- :func:`run_python_blocks`: the docs-block runner (documentation that runs as a test);
- :mod:`modelyard.testing.pytest_plugin`: the S3 (moto) and PostgreSQL fixtures, a pytest plugin;
- :mod:`modelyard.testing.faults`: fault-injecting storage; :mod:`modelyard.testing.contract`: the
  contract suite every integration's tests reuse.

Import-light: nothing here imports a framework at module level.
"""

from __future__ import annotations

from ._docs import python_blocks, run_python_blocks
from ._frameworks import FRAMEWORK_MODULES, frameworks_imported_by
from ._state import isolated_state, reset_state

__all__ = ["FRAMEWORK_MODULES", "frameworks_imported_by", "isolated_state", "python_blocks", "reset_state",
           "run_python_blocks"]
