"""Real, few-step CPU ``Trainer`` runs with ``ModelyardCallback``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from transformers import TrainerCallback

import modelyard
from modelyard_transformers import ModelyardCallback

from ._storage import local_checkpoints, stored_versions
from ._tiny import ID2LABEL, run, tiny_model

LABELS = {name: i for i, name in ID2LABEL.items()}


def recorded(callback: ModelyardCallback) -> modelyard.Model:
    modelyard.OutputModel.wait_for_uploads()
    assert callback.output_model is not None
    return modelyard.Model(callback.output_model.id)


def by_iteration(model: modelyard.Model) -> dict[int | None, modelyard.ModelVersion]:
    return {v.iteration: v for v in model.versions}


class Scores(TrainerCallback):  # type: ignore[misc]
    """Makes ``eval_score`` follow a script, so that which checkpoint is best is known in advance."""

    def __init__(self, scores: list[float]) -> None:
        self.scores = iter(scores)

    def compute_metrics(self, _prediction: Any) -> dict[str, float]:
        return {"score": next(self.scores)}


def test_every_save_becomes_a_package_version_with_config_labels_and_step(tmp_path: Path) -> None:
    callback = ModelyardCallback()
    trainer = run(tmp_path / "out", [callback], max_steps=6, save_steps=2)
    model = recorded(callback)

    assert [v.iteration for v in model.versions] == [2, 4, 6]
    assert [v.file_name for v in model.versions] == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    assert all(v.state == "ready" and v.package_format == "dir" for v in model.versions)
    assert model.framework == "transformers"
    assert model.labels == LABELS
    assert model.config_dict == json.loads(json.dumps(trainer.model.config.to_dict()))
    assert "package" in model.system_tags
    # tags: "last" moves with each save; the final model is the last checkpoint, byte for byte
    assert [v.tags for v in model.versions] == [[], [], ["last", "final"]]
    meta = model.versions[-1].metadata
    assert meta["kind"] == "checkpoint" and meta["global_step"] == 6 and meta["training_state"] is True
    assert meta["training_args"]["save_steps"] == 2
    assert meta["monitor"] is None and meta["score"] is None  # the same keys in every integration
    files = {p.name for p in map(Path, model.get_weights_package(raise_on_error=True, version=1))}
    assert {"model.safetensors", "config.json", "optimizer.pt", "scheduler.pt", "trainer_state.json",
            "rng_state.pth"} == files
    # training_args.bin pickles hub_token: it stays local, never stored
    assert (tmp_path / "out" / "checkpoint-2" / "training_args.bin").exists()
    assert len(modelyard.Model.query_models()) == 1


def test_save_total_limit_rotation_is_mirrored_in_storage(tmp_path: Path, fresh_home: Path) -> None:
    callback = ModelyardCallback()
    run(tmp_path / "out", [callback], max_steps=6, save_steps=1, save_total_limit=2)
    model = recorded(callback)

    assert local_checkpoints(tmp_path / "out") == {"checkpoint-5", "checkpoint-6"}
    assert [v.iteration for v in model.versions] == [5, 6]
    assert stored_versions(fresh_home, model.id) == {v.version for v in model.versions}


def test_best_checkpoint_is_tagged_with_its_metric_and_kept(tmp_path: Path, fresh_home: Path) -> None:
    scores = Scores([0.5, 0.9, 0.1, 0.2, 0.3, 0.4])
    callback = ModelyardCallback()
    trainer = run(tmp_path / "out", [callback], evaluate=True, max_steps=6, save_steps=1,
                  eval_strategy="steps", eval_steps=1, save_total_limit=2, load_best_model_at_end=True,
                  metric_for_best_model="score", compute_metrics=scores.compute_metrics)
    model = recorded(callback)

    assert trainer.state.best_model_checkpoint.endswith("checkpoint-2")
    assert local_checkpoints(tmp_path / "out") == {"checkpoint-2", "checkpoint-6"}
    versions = by_iteration(model)
    assert sorted(versions) == [2, 6]
    assert stored_versions(fresh_home, model.id) == {v.version for v in model.versions}
    best = versions[2]
    assert set(best.tags) == {"best", "final"}  # load_best_model_at_end: the final model is the best one
    assert best.metadata["monitor"] == "eval_score"
    assert best.metadata["score"] == pytest.approx(0.9)
    assert best.metadata["greater_is_better"] is True
    assert versions[6].tags == ["last"]
    assert versions[6].metadata["score"] == pytest.approx(0.4)


def test_save_total_limit_one_keeps_only_the_best(tmp_path: Path, fresh_home: Path) -> None:
    scores = Scores([0.5, 0.9, 0.1, 0.2, 0.3, 0.4])
    callback = ModelyardCallback()
    run(tmp_path / "out", [callback], evaluate=True, max_steps=6, save_steps=1, eval_strategy="steps",
        eval_steps=1, save_total_limit=1, load_best_model_at_end=True, metric_for_best_model="score",
        compute_metrics=scores.compute_metrics)
    model = recorded(callback)

    assert local_checkpoints(tmp_path / "out") == {"checkpoint-2"}
    assert [(v.iteration, set(v.tags)) for v in model.versions] == [(2, {"best", "final"})]
    assert stored_versions(fresh_home, model.id) == {model.versions[0].version}


def test_pinned_versions_survive_rotation_and_mirror_retention_false_keeps_all(tmp_path: Path) -> None:
    callback = ModelyardCallback()

    class PinFirst(TrainerCallback):  # type: ignore[misc]
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 1:
                assert callback.output_model is not None
                callback.output_model.pin_version(1)

    run(tmp_path / "pinned", [callback, PinFirst()], max_steps=4, save_steps=1, save_total_limit=1)
    assert [v.iteration for v in recorded(callback).versions] == [1, 4]

    keep_all = ModelyardCallback(mirror_retention=False)
    run(tmp_path / "all", [keep_all], max_steps=4, save_steps=1, save_total_limit=1)
    assert [v.iteration for v in recorded(keep_all).versions] == [1, 2, 3, 4]
    assert local_checkpoints(tmp_path / "all") == {"checkpoint-4"}


def test_publishing_mid_run_fails_the_next_save_loudly(tmp_path: Path) -> None:
    out = modelyard.OutputModel(modelyard.Task.init(project_name="p", task_name="t"), name="published")
    callback = ModelyardCallback(output_model=out)

    class PublishAfterFirst(TrainerCallback):  # type: ignore[misc]
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 1:
                out.publish()

    with pytest.raises(modelyard.PublishedModelError):  # the next save cannot add to a published model
        run(tmp_path / "out", [callback, PublishAfterFirst()], max_steps=6, save_steps=1, save_total_limit=1)
    assert [v.iteration for v in recorded(callback).versions] == [1]


def test_injected_output_model_gets_config_and_labels(tmp_path: Path) -> None:
    task = modelyard.Task.init(project_name="p", task_name="t")
    out = modelyard.OutputModel(task, name="mine")
    callback = ModelyardCallback(output_model=out)
    run(tmp_path / "out", [callback], max_steps=2, save_steps=2)
    model = recorded(callback)
    assert model.id == out.id and model.name == "mine"
    assert model.labels == LABELS and model.config_dict["hidden_size"] == 32


@pytest.mark.parametrize(("id2label", "explicit", "expected"), [
    (ID2LABEL, None, LABELS),
    (None, None, {}),  # transformers' placeholder LABEL_0, LABEL_1 mean nothing
    (ID2LABEL, {"cat": 0, "dog": 1}, {"cat": 0, "dog": 1}),  # an explicit enumeration wins
    (None, {"cat": 0, "dog": 1}, {"cat": 0, "dog": 1}),
])
def test_labels(tmp_path: Path, id2label: dict[int, str] | None, explicit: dict[str, int] | None,
                expected: dict[str, int]) -> None:
    callback = ModelyardCallback(label_enumeration=explicit)
    model = tiny_model(id2label=id2label)
    run(tmp_path / "out", [callback], model=model, max_steps=2, save_steps=2)
    assert recorded(callback).labels == expected


def test_without_training_state_only_what_from_pretrained_needs_is_stored(tmp_path: Path) -> None:
    callback = ModelyardCallback(include_training_state=False)
    run(tmp_path / "out", [callback], max_steps=2, save_steps=2)
    model = recorded(callback)
    (version,) = model.versions
    folder = model.get_weights_package(return_path=True, raise_on_error=True, version=version.version)
    files = {p.name for p in Path(str(folder)).iterdir()}
    assert files == {"model.safetensors", "config.json"}
    assert version.metadata["training_state"] is False


def test_final_model_is_saved_when_no_checkpoint_holds_it(tmp_path: Path) -> None:
    callback = ModelyardCallback()
    run(tmp_path / "out", [callback], max_steps=3, save_strategy="no")
    model = recorded(callback)
    (final,) = model.versions
    assert final.tags == ["final"] and final.iteration == 3 and final.file_name == "final"
    assert final.metadata["kind"] == "final"
    files = {p.name for p in map(Path, model.get_weights_package(raise_on_error=True))}
    assert files == {"model.safetensors", "config.json"}
    assert not (tmp_path / "out").exists() or local_checkpoints(tmp_path / "out") == set()


def test_record_final_false_tags_nothing_final(tmp_path: Path) -> None:
    callback = ModelyardCallback(record_final=False)
    run(tmp_path / "out", [callback], max_steps=2, save_steps=1)
    assert [v.tags for v in recorded(callback).versions] == [[], ["last"]]


def test_secrets_are_absent_from_the_recorded_arguments(tmp_path: Path, fresh_home: Path) -> None:
    token = "hf_" + "Secr3tT0kenValue" * 3
    callback = ModelyardCallback()
    run(tmp_path / "out", [callback], max_steps=2, save_steps=2, hub_token=token,
        hub_model_id="someone/tiny")
    model = recorded(callback)
    args = model.versions[0].metadata["training_args"]
    assert args["hub_model_id"] == "someone/tiny" and args["max_steps"] == 2
    assert not [k for k in args if "token" in k.lower()]
    for path in fresh_home.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path
    assert token not in json.dumps(model.config_dict)


def test_a_second_train_call_records_a_second_model(tmp_path: Path) -> None:
    callback = ModelyardCallback()
    trainer = run(tmp_path / "out", [callback], max_steps=2, save_steps=2)
    first = recorded(callback).id
    trainer.args.max_steps = 4
    trainer.train()
    second = recorded(callback).id
    assert first != second
    assert len(modelyard.Model.query_models()) == 2


def test_other_processes_record_nothing(tmp_path: Path) -> None:
    from ._tiny import arguments

    class State:
        is_world_process_zero = False
        global_step = 2
        epoch = 1.0
        best_model_checkpoint = None

    callback = ModelyardCallback()
    args = arguments(tmp_path / "out")
    for event in ("on_train_begin", "on_save", "on_evaluate", "on_train_end"):
        getattr(callback, event)(args, State(), None, model=tiny_model(), metrics={"eval_loss": 1.0})
    assert callback.output_model is None
    assert modelyard.Model.query_models() == []
