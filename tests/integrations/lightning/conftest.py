"""Fixtures and warning filters for the Lightning integration tests.

Warnings are errors in this suite (root ``pyproject.toml``). The third-party warnings below are raised by
Lightning itself on the versions we support, not by our code; each is ignored here, for these tests only,
with its reason.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard.testing import reset_state

HERE = Path(__file__).parent

#: (filter, reason) pairs, added to every test of this folder.
LIGHTNING_WARNINGS = [
    # lightning 2.6 with torch >= 2.10: Lightning's _pytree helper builds a LeafSpec, which torch deprecated.
    (r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning",
     "lightning/pytorch/utilities/_pytree.py on torch 2.13"),
    # Our tiny DataLoaders use the main process on purpose (seconds-long tests, 2-core CI machines).
    (r"ignore:The '\w+_dataloader' does not have many workers:UserWarning", "num_workers=0 by design"),
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            for spec, _reason in LIGHTNING_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(spec))


@pytest.fixture(autouse=True)
def fresh_modelyard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh MODELYARD_HOME, registry, upload engine and plugin manager for each test.

    Harmless next to the root ``modelyard_home`` fixture: both point MODELYARD_HOME at a fresh folder of this
    test and reset modelyard's state before and after.
    """
    for name in ("MODELYARD_REGISTRY_URL", "MODELYARD_DEFAULT_OUTPUT_URI", "MODELYARD_DISABLE_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "lightning-home"
    home.mkdir()
    monkeypatch.setenv("MODELYARD_HOME", str(home))
    monkeypatch.chdir(tmp_path)  # Lightning's default_root_dir and lightning_logs land in the test's folder
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # so tests can check nothing is left behind
    reset_state()
    yield home
    reset_state()
