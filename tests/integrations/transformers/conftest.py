"""Fixtures for the transformers integration: an offline hub, a fresh registry and plugin manager per test.

No third-party warning needs ignoring: the suite runs under the root ``filterwarnings = error`` as is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Nothing may be fetched from the hub: set before any test module imports transformers.
os.environ["HF_HUB_OFFLINE"] = "1"

from modelyard.testing import reset_state  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_home(modelyard_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Give each test the root conftest's fresh ``MODELYARD_HOME``, run it in ``tmp_path``, offline.

    ``modelyard.testing.reset_state()`` runs before and after, so no upload engine, registry, current task
    or plugin manager leaks between tests.
    """
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    reset_state()
    yield modelyard_home
    reset_state()
