"""The contract every framework integration meets, as a pytest base class to subclass.

Example (in ``tests/integrations/<framework>/test_contract.py``)::

    class TestLightningContract(CallbackContract):
        integration_name = "lightning"

        def train(self, tmp_path, **callback_kwargs) -> TrainingRun:
            ...  # a real, tiny Trainer run with the integration's callback
            return TrainingRun(model_ids=[...], checkpoints=3, labels={...}, callback_class=ModelyardCallback)

The suite checks what users rely on whatever the framework: one model per run, named after the model; one
ready and verified version per checkpoint when training returns, with the same metric keys and exclusive
tags; safetensors weights that load without unpickling; labels and config recorded; the task rule (a task
the integration created is completed, one passed in is never closed); waiting for the run's own uploads
only; and the integration discoverable through the plugin system. ``TrainingRecorder`` itself (the service
every integration is built on) is checked here too, so each integration's environment runs it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelyard import (
    BEST_TAG,
    FINAL_TAG,
    LAST_TAG,
    Model,
    OutputModel,
    Task,
    TrainingRecorder,
    UploadError,
    get_callback_class,
    load_weights,
    save_safetensors,
    sniff_format,
)

WEIGHTS_NAME = "model.safetensors"


@dataclass
class TrainingRun:
    """What a contract run produced, as the integration's test reports it.

    Attributes:
        model_ids: The models the run recorded (the contract expects exactly one).
        checkpoints: How many checkpoints the framework saved during the run (one version each).
        labels: The label enumeration the run should have recorded (``None``: no labels expected).
        callback_class: The integration's callback class.
        model_name: The name the model should have (the framework model's class or name).
        extra: Anything else a subclass wants to keep for its own tests.
    """

    model_ids: list[str]
    checkpoints: int
    labels: dict[str, int] | None
    callback_class: type
    model_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def weights_file(model: Model, version: int) -> Path:
    """Return the local ``model.safetensors`` of a version (a single file or a package member)."""
    v = model.get_version(version)
    if v.package_format:
        folder = Path(str(model.get_weights_package(return_path=True, raise_on_error=True, version=version)))
        return folder / WEIGHTS_NAME
    return Path(str(model.get_weights(raise_on_error=True, version=version)))


class RecorderContract:
    """The recording service itself, with no framework: the rules every integration relies on."""

    @staticmethod
    def _checkpoint(recorder: TrainingRecorder, value: float) -> Path:
        folder = recorder.scratch_dir()
        save_safetensors({"w": np.full(3, value, dtype=np.float32)}, folder / WEIGHTS_NAME)
        return folder

    def test_contract_recorder_names_tell_checkpoint_streams_apart(self) -> None:
        """One stream: the model's name; several: the metric, else the index; never two alike."""
        names = TrainingRecorder.model_names
        assert names("Net", ["val_loss"]) == ["Net"]
        assert names("Net", ["val_loss", None]) == ["Net [val_loss]", "Net [checkpoint 1]"]
        assert len(set(names("Net", ["loss", "loss", None, None]))) == 4

    def test_contract_recorder_tags_retention_metrics_scratch_and_task(self) -> None:
        """Tags move, retention spares best and pinned versions, metrics land, scratch goes, the task closes."""
        recorder = TrainingRecorder(framework="test", project="p", task_name="run")
        recorder.add_model(name="Net")
        folders = [self._checkpoint(recorder, i) for i in range(3)]
        first, second, third = (recorder.record(folder, iteration=i, tags=[LAST_TAG], metrics={"loss": 1 / (i + 1)},
                                                monitor="loss") for i, folder in enumerate(folders))
        recorder.tag(first, BEST_TAG)
        recorder.model().pin_version(second.version)
        for version in (first, second, third):
            recorder.drop(version)  # best, pinned: kept; the third is removed once settled
        recorder.finish()
        versions = Model(recorder.model().id).versions
        assert [(v.version, v.tags) for v in versions] == [(1, [BEST_TAG]), (2, [])]
        assert versions[0].metadata["score"] == 1.0 and versions[0].metadata["metrics"] == {"loss": 1.0}
        assert recorder.task is not None and recorder.owns_task and recorder.task.status == "completed"
        assert not any(folder.exists() for folder in folders)

    def test_contract_recorder_training_error_fails_only_its_own_task(self) -> None:
        """A training error marks the task the recorder created failed, never a task passed in."""
        recorder = TrainingRecorder(framework="test", project="p", task_name="run")
        with pytest.raises(RuntimeError), recorder:
            recorder.add_model(name="Net")
            raise RuntimeError("boom")
        assert recorder.task is not None and recorder.task.status == "failed"
        given = Task.init(project_name="p", task_name="given")
        with pytest.raises(RuntimeError), TrainingRecorder(framework="test", task=given) as other:
            other.add_model(name="Net")
            raise RuntimeError("boom")
        assert given.status == "in_progress"

    def test_contract_recorder_background_work_runs_in_order_and_its_errors_reach_the_caller(self) -> None:
        """Background mode: work runs in order off the caller's thread; an error is raised at the next call."""
        recorder = TrainingRecorder(framework="test", project="p", task_name="run", background=True)
        recorder.add_model(name="Net")
        versions = [recorder.submit(recorder.record, self._checkpoint(recorder, i), iteration=i) for i in range(3)]
        recorder.submit(recorder.tag, versions[-1], LAST_TAG)
        recorder.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            recorder.flush()
        recorder.finish()  # runs what is left, then waits for the run's uploads
        model = Model(recorder.model().id)
        assert [(v.iteration, v.state) for v in model.versions] == [(0, "ready"), (1, "ready"), (2, "ready")]
        assert model.get_version(3).tags == [LAST_TAG]


class CallbackContract(RecorderContract):
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

    # -- the rules every integration shares (TrainingRecorder's) ------------------------------------------

    def test_contract_model_named_after_the_model(self, contract_run: TrainingRun) -> None:
        """The model is named after the framework's model (its class or name), not the task."""
        assert contract_run.model_name, "the integration's contract run must say which name it expects"
        assert Model(contract_run.model_ids[0]).name == contract_run.model_name

    def test_contract_created_task_is_completed(self, contract_run: TrainingRun) -> None:
        """A task the integration created for the run is closed ``completed`` when training ends."""
        task = Task(str(Model(contract_run.model_ids[0]).task))
        assert task.status == "completed"
        assert Task.current_task() is None or Task.current_task() != task

    def test_contract_same_metric_keys_on_every_version(self, contract_run: TrainingRun) -> None:
        """Every version carries ``monitor`` and ``score``; a monitored one its ``metrics`` too."""
        for v in Model(contract_run.model_ids[0]).versions:
            assert "monitor" in v.metadata and "score" in v.metadata, v.metadata
            if v.metadata["monitor"] is not None:
                assert isinstance(v.metadata.get("metrics"), dict), v.metadata
                assert v.metadata["score"] == v.metadata["metrics"].get(v.metadata["monitor"], v.metadata["score"])

    def test_contract_exclusive_tags_on_one_version_each(self, contract_run: TrainingRun) -> None:
        """``best``, ``last`` and ``final`` are each held by one version at most; ``last`` by exactly one."""
        versions = Model(contract_run.model_ids[0]).versions
        for tag in (BEST_TAG, FINAL_TAG):
            assert sum(tag in v.tags for v in versions) <= 1, [(v.version, v.tags) for v in versions]
        assert sum(LAST_TAG in v.tags for v in versions) == 1, [(v.version, v.tags) for v in versions]

    def test_contract_given_task_is_never_closed_and_only_own_uploads_are_waited_for(self, tmp_path: Path
                                                                                     ) -> None:
        """A task passed in stays ``in_progress``; another run's failing upload neither blocks nor fails fit."""
        from modelyard.testing.faults import FaultPlan, FaultyFileSystem, register

        register()
        FaultyFileSystem.reset()
        FaultyFileSystem.set_plan("broken", FaultPlan(error=PermissionError))
        other = OutputModel(Task.init(project_name="other", task_name="unrelated"), name="unrelated")
        weights = tmp_path / "unrelated.safetensors"
        save_safetensors({"w": np.ones(3, dtype=np.float32)}, weights)
        other.add_version(str(weights), upload_uri="faulty://broken/models", auto_delete_file=False)

        given = Task.init(project_name="given", task_name="mine")
        run = self.train(tmp_path / "run", task=given)
        model = Model(run.model_ids[0])
        assert model.task == given.id
        assert given.status == "in_progress"  # not the integration's to close
        assert all(v.state == "ready" for v in model.versions)  # fit returned after its own uploads
        with pytest.raises(UploadError):  # the other run's failure is still there for whoever waits for it
            OutputModel.wait_for_uploads()
