"""Fixtures shared by the whole test suite.

The S3 (moto server), PostgreSQL and isolation fixtures are modelyard's pytest plugin,
:mod:`modelyard.testing.pytest_plugin` (see its docstring for the list), so that a third-party integration
tests against the same real servers. Installed modelyard registers it through its ``pytest11`` entry point;
this conftest loads it by name only when that entry point is absent or autoloading is off (a checkout on
``PYTHONPATH``, ``PYTEST_DISABLE_PLUGIN_AUTOLOAD``), because loading it both ways would register the module
twice.

Keep this module import-light: it is imported for every test, including the ones that prove
``import modelyard`` pulls in no framework.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest

PLUGIN = "modelyard.testing.pytest_plugin"


def _loaded_by_entry_point() -> bool:
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    return any(ep.value == PLUGIN for ep in entry_points(group="pytest11"))


pytest_plugins = [] if _loaded_by_entry_point() else [PLUGIN]


@pytest.fixture(autouse=True)
def _fresh_modelyard(modelyard_home: Path) -> Iterator[Path]:
    """Give every test of this suite a fresh ``MODELYARD_HOME`` and fresh modelyard state (the plugin's fixture)."""
    yield modelyard_home


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say loudly, in one line, when the PostgreSQL half of the suite did not run (the env still passes)."""
    from modelyard.testing.pytest_plugin import POSTGRES_SKIP_REASON

    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if isinstance(r.longrepr, tuple) and POSTGRES_SKIP_REASON in str(r.longrepr[2])]
    if skipped:
        terminalreporter.write_line(
            f"modelyard: {len(skipped)} PostgreSQL tests SKIPPED: no server. Run "
            '`eval "$(bash .ci/start-postgres.sh)"` first to run them (CI does).', yellow=True, bold=True)
