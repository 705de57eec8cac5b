"""Fixtures for the transformers integration: offline hub, a fresh registry and plugin manager per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Nothing may be fetched from the hub: set before transformers is imported by any test module.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from modelyard.testing import isolated_state  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    with isolated_state(tmp_path / "home") as path:
        yield path
