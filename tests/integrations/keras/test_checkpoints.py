"""Real fits: what gets recorded, when, with which tags, and what retention removes."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import keras
import pytest

from modelyard import InvalidArgumentError, Model, Task
from modelyard_keras import ModelyardCallback

from .helpers import CLASS_NAMES, fit, make_classifier, stored_packages, version_files


def tagged(model: Model, tag: str) -> list[int]:
    return [v.version for v in model.versions if tag in v.tags]


def test_every_epoch_is_a_version_with_iteration_metric_config_and_files(tmp_path: Path) -> None:
    callback = ModelyardCallback(class_names=CLASS_NAMES)
    history = fit(make_classifier(), callback, epochs=3)

    model = Model(str(callback.model_id))
    versions = model.versions
    assert [v.iteration for v in versions] == [1, 2, 3]
    assert all(v.state == "ready" for v in versions)
    val_losses = history.history["val_loss"]
    for v, expected in zip(versions, val_losses, strict=True):
        assert v.metadata["monitor"] == "val_loss"
        assert v.metadata["mode"] == "min"
        assert math.isclose(v.metadata["score"], expected, rel_tol=1e-6)
        assert math.isclose(v.metadata["metrics"]["val_accuracy"],
                            history.history["val_accuracy"][v.iteration - 1], rel_tol=1e-6)
        assert v.metadata["epoch"] == v.iteration
    assert [v.metadata["global_step"] for v in versions] == [6, 12, 18]  # 96 samples / batch 16, per epoch
    assert tagged(model, "last") == [3]
    assert tagged(model, "best") == [1 + min(range(3), key=val_losses.__getitem__)]
    assert version_files(model.id, 3) == ["model.keras", "model.safetensors"]

    assert model.name == "tiny"
    assert model.framework == "keras"
    config = model.config_dict
    assert config["framework"] == "keras"
    assert config["backend"] == keras.backend.backend()
    assert config["model"]["class_name"] == "Sequential"
    assert [layer["class_name"] for layer in config["model"]["config"]["layers"]] == ["InputLayer", "Dense",
                                                                                       "Dense"]
    assert config["compile"]["optimizer"]["class_name"] == "Adam"
    assert config["compile"]["loss"] == "sparse_categorical_crossentropy"
    assert config["compile"]["metrics"] == ["accuracy"]
    assert config["fit"] == {"verbose": 0, "epochs": 3, "steps": 6}
    assert config["callback"]["save_freq"] == "epoch"


def test_task_defaults_to_current_task_else_a_new_keras_task() -> None:
    first = ModelyardCallback()
    fit(make_classifier(name="alpha"), first, epochs=1)
    created = Task(str(Model(str(first.model_id)).task))
    assert (created.project, created.name) == ("keras", "alpha")

    current = Task.init(project_name="mine", task_name="run")
    second = ModelyardCallback()
    fit(make_classifier(), second, epochs=1)
    assert Model(str(second.model_id)).task == current.id

    explicit = Task.init(project_name="other", task_name="run-2")
    Task.init(project_name="mine", task_name="newer")  # now current; task= must win over it
    third = ModelyardCallback(task=explicit, name="custom-name", tags=["exp"])
    fit(make_classifier(), third, epochs=1)
    recorded = Model(str(third.model_id))
    assert (recorded.task, recorded.project, recorded.name, recorded.tags) == (explicit.id, "other",
                                                                               "custom-name", ["exp"])


def test_one_output_model_per_fit() -> None:
    callback = ModelyardCallback()
    model = make_classifier()
    fit(model, callback, epochs=1)
    first = callback.model_id
    fit(model, callback, epochs=2)
    assert callback.model_id != first
    assert [v.iteration for v in Model(str(first)).versions] == [1]
    assert [v.iteration for v in Model(str(callback.model_id)).versions] == [1, 2]


def test_save_best_only_records_improvements_only() -> None:
    callback = ModelyardCallback(monitor="val_loss", save_best_only=True)
    history = fit(make_classifier(), callback, epochs=6)

    losses = history.history["val_loss"]
    improving = [i + 1 for i, loss in enumerate(losses) if loss < min(losses[:i], default=math.inf)]
    model = Model(str(callback.model_id))
    assert [v.iteration for v in model.versions] == improving
    scores = [v.metadata["score"] for v in model.versions]
    assert scores == sorted(scores, reverse=True)
    newest = model.versions[-1].version
    assert tagged(model, "best") == [newest]
    assert tagged(model, "last") == [newest]


def test_mode_auto_maximises_accuracy() -> None:
    callback = ModelyardCallback(monitor="val_accuracy", save_best_only=True)
    history = fit(make_classifier(), callback, epochs=4)
    accuracies = history.history["val_accuracy"]
    model = Model(str(callback.model_id))
    assert model.versions[-1].metadata["mode"] == "max"
    assert math.isclose(model.versions[-1].metadata["score"], max(accuracies), rel_tol=1e-6)
    assert model.versions[0].iteration == 1


def test_keep_top_k_rotates_registry_and_storage(modelyard_home: Path) -> None:
    callback = ModelyardCallback(monitor="val_loss", keep_top_k=2)
    history = fit(make_classifier(), callback, epochs=6)

    model = Model(str(callback.model_id))
    assert len(model.versions) == 2
    assert len(stored_packages(modelyard_home)) == 2  # removed versions' objects are gone too
    losses = history.history["val_loss"]
    best_two = sorted(range(6), key=losses.__getitem__)[:2]
    assert sorted(v.iteration for v in model.versions) == sorted(i + 1 for i in best_two)
    assert tagged(model, "best") == [v.version for v in model.versions if v.iteration == best_two[0] + 1]
    assert len(tagged(model, "last")) == 1


def test_keep_top_k_without_monitor_keeps_the_newest(modelyard_home: Path) -> None:
    callback = ModelyardCallback(monitor=None, keep_top_k=2)
    fit(make_classifier(), callback, epochs=4, validation=False)
    model = Model(str(callback.model_id))
    assert [v.iteration for v in model.versions] == [3, 4]
    assert len(stored_packages(modelyard_home)) == 2
    assert tagged(model, "last") == [model.versions[-1].version]
    assert tagged(model, "best") == []
    assert all(v.metadata["score"] is None for v in model.versions)


def test_retention_never_removes_a_pinned_version(modelyard_home: Path) -> None:
    callback = ModelyardCallback(monitor=None, keep_top_k=1)
    pin_first = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: callback.output_model.pin_version(1) if epoch == 0 else None)
    x_model = make_classifier()
    from .helpers import make_data

    x, y = make_data()
    x_model.fit(x, y, epochs=4, batch_size=16, verbose=0, callbacks=[callback, pin_first])
    model = Model(str(callback.model_id))
    assert [(v.iteration, v.pinned) for v in model.versions] == [(1, True), (4, False)]
    assert len(stored_packages(modelyard_home)) == 2


def test_every_n_batches(modelyard_home: Path) -> None:
    callback = ModelyardCallback(save_freq=4, monitor="loss", save_weights_only=True)
    fit(make_classifier(), callback, epochs=2, validation=False)  # 6 batches per epoch, 12 in all

    model = Model(str(callback.model_id))
    assert [v.iteration for v in model.versions] == [4, 8, 12]
    assert [v.metadata["epoch"] for v in model.versions] == [1, 2, 2]
    assert all(v.metadata["monitor"] == "loss" and v.metadata["score"] > 0 for v in model.versions)
    assert version_files(model.id, 1) == ["model.safetensors"]
    assert tagged(model, "last") == [3]


def test_every_n_batches_with_top_k(modelyard_home: Path) -> None:
    callback = ModelyardCallback(save_freq=2, monitor="loss", keep_top_k=2, save_weights_only=True)
    fit(make_classifier(), callback, epochs=2, validation=False)
    model = Model(str(callback.model_id))
    assert len(model.versions) == 2
    assert len(stored_packages(modelyard_home)) == 2
    assert all(v.iteration % 2 == 0 for v in model.versions)


def test_epoch_mode_leaves_keras_batch_dispatch_alone() -> None:
    # Keras turns off asynchronous batch-callback dispatch for a callback that overrides on_train_batch_end;
    # the epoch mode must not, so it costs nothing on batches.
    assert ModelyardCallback().on_train_batch_end.__func__ is keras.callbacks.Callback.on_train_batch_end
    assert ModelyardCallback(save_freq=3).on_train_batch_end.__func__ is not \
        keras.callbacks.Callback.on_train_batch_end


def test_missing_monitor_warns_and_records_nothing_ranked() -> None:
    callback = ModelyardCallback(monitor="val_loss", keep_top_k=2)
    # Not pytest.warns: it would re-raise Keras's own DeprecationWarning from this file, past the filter.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        fit(make_classifier(), callback, epochs=2, validation=False)
    ours = [w for w in caught if issubclass(w.category, UserWarning)]
    assert len(ours) == 1  # once per fit, not once per epoch
    assert "cannot rank checkpoints by 'val_loss'" in str(ours[0].message)
    assert Model(str(callback.model_id)).versions == []


def test_unranked_run_without_the_metric_still_records() -> None:
    callback = ModelyardCallback()  # monitor val_loss, but no validation data: nothing to rank, save anyway
    fit(make_classifier(), callback, epochs=2, validation=False)
    versions = Model(str(callback.model_id)).versions
    assert [v.metadata["score"] for v in versions] == [None, None]
    assert tagged(Model(str(callback.model_id)), "best") == []


@pytest.mark.parametrize("kwargs, match", [
    ({"save_freq": 0}, "save_freq"),
    ({"save_freq": True}, "save_freq"),
    ({"save_freq": "batch"}, "save_freq"),
    ({"keep_top_k": 0}, "keep_top_k"),
    ({"mode": "maximum"}, "mode"),
    ({"monitor": None, "save_best_only": True}, "needs a monitor"),
    ({"save_freq": 5, "save_best_only": True}, "validation metric"),
    ({"task": "not-a-task"}, "Task"),
])
def test_bad_arguments_fail_in_the_constructor(kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        ModelyardCallback(**kwargs)


def test_only_the_chief_process_records(monkeypatch: pytest.MonkeyPatch) -> None:
    # Make this process a non-chief the way each backend reports it.
    if keras.backend.backend() == "jax":
        import jax

        monkeypatch.setattr(jax, "process_index", lambda: 1)
    else:
        monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "1")
    callback = ModelyardCallback(class_names=CLASS_NAMES)
    fit(make_classifier(), callback, epochs=2)
    assert callback.output_model is None
    assert Model.query_models() == []


def test_private_folders_are_removed_after_upload(tmp_path: Path) -> None:
    callback = ModelyardCallback()
    fit(make_classifier(), callback, epochs=3)
    assert list((tmp_path / "tmp").iterdir()) == []


def drive(callback: ModelyardCallback, scores: list[float], monitor: str = "val_loss") -> Model:
    """Run the callback's epoch events by hand with chosen scores (a real fit cannot be made to yield NaN)."""
    model = make_classifier()
    fit(model, keras.callbacks.Callback(), epochs=1, validation=False)  # builds the optimizer
    callback.set_model(model)
    callback.set_params({"epochs": len(scores), "steps": 1, "verbose": 0})
    callback.on_train_begin()
    for epoch, score in enumerate(scores):
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, {"loss": 1.0, monitor: score})
    callback.on_train_end()
    return Model(str(callback.model_id))


def test_non_finite_scores_are_recorded_as_text_and_never_best() -> None:
    model = drive(ModelyardCallback(save_weights_only=True), [math.nan, 0.5, math.inf, 0.7])
    assert [v.metadata["score"] for v in model.versions] == ["nan", 0.5, "inf", 0.7]
    assert [v.metadata["metrics"]["val_loss"] for v in model.versions] == ["nan", 0.5, "inf", 0.7]
    assert tagged(model, "best") == [2]
    assert tagged(model, "last") == [4]


def test_non_finite_scores_only_fill_free_places_in_the_top_k(modelyard_home: Path) -> None:
    callback = ModelyardCallback(save_weights_only=True, keep_top_k=2)
    model = drive(callback, [math.nan, 0.5, math.nan, 0.4, 0.6])
    assert [(v.iteration, v.metadata["score"]) for v in model.versions] == [(2, 0.5), (4, 0.4)]
    assert len(stored_packages(modelyard_home)) == 2
    assert drive(ModelyardCallback(save_weights_only=True, save_best_only=True),
                 [math.nan, 0.5, math.nan, 0.4]).versions[0].iteration == 2


def test_ties_never_displace_and_the_oldest_goes_first() -> None:
    model = drive(ModelyardCallback(save_weights_only=True, keep_top_k=2), [0.5, 0.5, 0.5, 0.3])
    assert [v.iteration for v in model.versions] == [2, 4]
