"""The contract every framework integration meets, as a pytest base class to subclass.

Example (in ``tests/integrations/<framework>/test_contract.py``)::

    class TestLightningContract(CallbackContract):
        integration_name = "lightning"

        def train(self, tmp_path, **callback_kwargs) -> TrainingRun:
            ...  # a real, tiny Trainer run with the integration's callback
            return TrainingRun(model_ids=[...], checkpoints=3, labels={...}, callback_class=ModelyardCallback)

The suite checks what users rely on whatever the framework: one model per run, one ready and verified
version per checkpoint, safetensors weights that load without unpickling, labels and config recorded, and
the integration discoverable through the plugin system.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from modelyard import load_weights, sniff_format
from modelyard._model import Model
from modelyard._plugins import get_callback_class

WEIGHTS_NAME = "model.safetensors"


@dataclass
class TrainingRun:
    """What a contract run produced, as the integration's test reports it.

    Attributes:
        model_ids: The models the run recorded (the contract expects exactly one).
        checkpoints: How many checkpoints the framework saved during the run (one version each).
        labels: The label enumeration the run should have recorded (``None``: no labels expected).
        callback_class: The integration's callback class.
        extra: Anything else a subclass wants to keep for its own tests.
    """

    model_ids: list[str]
    checkpoints: int
    labels: dict[str, int] | None
    callback_class: type
    extra: dict[str, Any] = field(default_factory=dict)


def weights_file(model: Model, version: int) -> Path:
    """Return the local ``model.safetensors`` of a version (a single file or a package member)."""
    v = model.get_version(version)
    if v.package_format:
        folder = Path(str(model.get_weights_package(return_path=True, raise_on_error=True, version=version)))
        return folder / WEIGHTS_NAME
    return Path(str(model.get_weights(raise_on_error=True, version=version)))


class CallbackContract:
    """Subclass and implement :meth:`train`; the ``test_contract_*`` methods run against it."""

    #: The name the integration registers under ``modelyard.plugins``.
    integration_name: str = ""

    def train(self, tmp_path: Path, **callback_kwargs: Any) -> TrainingRun:
        """Run a tiny real training with the integration's callback and report what it should record."""
        raise NotImplementedError

    @pytest.fixture
    def contract_run(self, tmp_path: Path) -> TrainingRun:
        """One training run shared by the contract tests of a class instance."""
        return self.train(tmp_path)

    def test_contract_integration_is_discoverable(self, contract_run: TrainingRun) -> None:
        """The integration's entry point resolves to its callback class."""
        assert get_callback_class(self.integration_name) is contract_run.callback_class

    def test_contract_one_model_per_run(self, contract_run: TrainingRun) -> None:
        """A training run records exactly one model."""
        assert len(contract_run.model_ids) == 1
        assert len(set(contract_run.model_ids)) == 1

    def test_contract_one_ready_version_per_checkpoint(self, contract_run: TrainingRun) -> None:
        """Every checkpoint became a ready version with its size and sha256."""
        model = Model(contract_run.model_ids[0])
        versions = model.versions
        assert contract_run.checkpoints >= 1
        assert len(versions) >= contract_run.checkpoints or any(v.tags for v in versions)
        assert all(v.state == "ready" for v in versions), [(v.version, v.state, v.error) for v in versions]
        assert all(v.size is not None and v.size > 0 and v.sha256 for v in versions)

    def test_contract_weights_verify_and_load_without_pickle(self, contract_run: TrainingRun) -> None:
        """Every version's weights are safetensors that verify and load without pickle."""
        model = Model(contract_run.model_ids[0])
        for v in model.versions:
            path = weights_file(model, v.version)
            assert sniff_format(path) == "safetensors"
            tensors = load_weights(path)
            assert tensors, "the weights file holds no tensors"
            if not v.package_format:
                assert hashlib.sha256(path.read_bytes()).hexdigest() == v.sha256

    def test_contract_iterations_recorded_and_increasing(self, contract_run: TrainingRun) -> None:
        """Every version has an integer iteration, in training order."""
        versions = Model(contract_run.model_ids[0]).versions
        iterations = [v.iteration for v in versions]
        assert all(isinstance(i, int) for i in iterations), iterations
        assert iterations == sorted(iterations)

    def test_contract_labels_and_config_recorded(self, contract_run: TrainingRun) -> None:
        """The labels, a configuration and the framework are recorded."""
        model = Model(contract_run.model_ids[0])
        if contract_run.labels is not None:
            assert model.labels == contract_run.labels
        assert model.config_dict, "the integration recorded no configuration"
        assert model.framework
