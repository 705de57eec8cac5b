"""The Keras 3 callback: each ``model.fit`` checkpoint becomes a version of one modelyard ``OutputModel``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import modelyard
from modelyard import BEST_TAG, LAST_TAG, InvalidArgumentError, OutputModel, Task

from . import _keras
from ._weights import ARCHIVE_FILE, WEIGHTS_FILE, save_weights

_keras.import_keras()  # a missing Keras, Keras 2 or a missing backend fails here, saying what to do

import keras  # noqa: E402 - after the check above

#: The folder name every checkpoint package has in storage (its version number tells them apart).
PACKAGE_NAME = "checkpoint"


class ModelyardCallback(keras.callbacks.Callback):
    """Record ``model.fit`` checkpoints, configuration and labels in the modelyard registry.

    One ``OutputModel`` per ``fit``, named after the Keras model; each checkpoint is a version holding
    ``model.safetensors`` and, unless ``save_weights_only``, ``model.keras``; ``iteration`` counts epochs (or
    batches); ``last``/``best`` follow the newest and best version. Only the chief process records.

    Args:
        task: The task (default: the current task, else a new one in project ``"keras"``, closed at the end).
        name: The model name (default: the Keras model's name).
        tags: User tags of the model.
        monitor: The metric (a key of Keras's ``logs``) that ranks checkpoints; ``None`` for none.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (see :class:`modelyard.CheckpointRanking`).
        save_freq: ``"epoch"``, or an integer N to capture every N training batches.
        save_best_only: Capture only when the monitored metric improves on the best so far.
        keep_top_k: Keep only the k best versions (the k newest without ``monitor``), removing the others.
        save_weights_only: Record only ``model.safetensors``, not the ``.keras`` archive.
        class_names: The class names in output order (``["cat", "dog"]`` -> ``{"cat": 0, "dog": 1}``).
        label_enumeration: Label name -> output index, instead of ``class_names``.
        dataset: A dataset with ``class_names`` (``keras.utils.image_dataset_from_directory``) to take them from.
            Without any of the three, labels come from a ``StringLookup``/``IntegerLookup`` output layer.
        wait_on_train_end: When ``fit`` ends, wait for the run's uploads (a failure raises from ``fit``).

    Raises:
        InvalidArgumentError: An invalid argument, or (at ``fit``) no ``.keras`` archive can be written.
        LabelError: Invalid labels, or (at ``fit``) labels that do not fit the output units.
    """

    def __init__(self, *, task: Task | None = None, name: str | None = None,
                 tags: Sequence[str] | None = None, monitor: str | None = "val_loss", mode: str = "auto",
                 save_freq: str | int = "epoch", save_best_only: bool = False, keep_top_k: int | None = None,
                 save_weights_only: bool = False, class_names: Sequence[str] | None = None,
                 label_enumeration: Mapping[str, int] | None = None, dataset: Any = None,
                 wait_on_train_end: bool = True) -> None:
        super().__init__()
        if task is not None and not isinstance(task, Task):
            raise InvalidArgumentError(f"task must be a modelyard Task, got {type(task).__name__}")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int)
                                     or save_freq < 1):
            raise InvalidArgumentError(f"save_freq must be 'epoch' or a positive number of batches, got "
                                       f"{save_freq!r}")
        self._ranking = modelyard.CheckpointRanking(monitor, mode, keep_top_k, save_best_only)
        if self._ranking.ranked and save_freq != "epoch" and str(monitor).startswith("val_"):
            raise InvalidArgumentError(
                f"monitor={monitor!r} is a validation metric, which Keras computes only at the end of an "
                f"epoch; with save_freq={save_freq} rank checkpoints by a training metric such as 'loss', "
                "or use save_freq='epoch'.")
        self._task = task
        self._name = name
        self._tags = list(tags) if tags is not None else None
        self._save_freq = save_freq
        self._save_weights_only = bool(save_weights_only)
        self._wait = bool(wait_on_train_end)
        self._given_labels = _keras.labels_from_arguments(class_names, label_enumeration, dataset)
        if save_freq != "epoch":
            # On the instance, not the class: Keras keeps its asynchronous batch dispatch for "epoch" (it turns
            # it off for any callback whose on_train_batch_end is not the default).
            self.on_train_batch_end = self._on_train_batch_end
        self._reset()

    def _reset(self) -> None:
        #: The recorder of the current (or last) ``fit``; ``None`` before training, or off-chief.
        self.recorder: modelyard.TrainingRecorder | None = None
        self._chief = False
        self._ranking.reset()
        self._epoch = 0
        self._step = 0
        self._last_batch = 0
        self._since_save = 0

    @property
    def output_model(self) -> OutputModel | None:
        """The ``OutputModel`` of the current (or last) ``fit``; ``None`` before training, or off-chief."""
        return self.recorder.models.get(None) if self.recorder is not None else None

    @property
    def model_id(self) -> str | None:
        """The id of :attr:`output_model`."""
        output = self.output_model
        return output.id if output is not None else None

    def _settings(self) -> dict[str, Any]:
        r = self._ranking
        return {"monitor": r.monitor, "mode": r.mode, "save_freq": self._save_freq,
                "save_best_only": r.save_best_only, "keep_top_k": r.keep_top_k,
                "save_weights_only": self._save_weights_only}

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        """Create this fit's ``OutputModel`` (on the chief process only), checking the labels first."""
        if self.recorder is not None and not self.recorder.finished:  # the previous fit raised, unseen here
            self.recorder.finish(RuntimeError("model.fit ended without on_train_end"))
        self._reset()
        self._chief = _keras.process_index(keras) == 0
        if not self._chief:
            return
        model = self.model
        labels = self._given_labels or _keras.labels_from_model(model)
        if labels is not None:
            _keras.check_against_output(labels, model)
        if not self._save_weights_only:
            self._check_archivable(model)
        self.recorder = modelyard.TrainingRecorder(framework="keras", task=self._task, project="keras",
                                                    task_name=str(model.name))
        self.recorder.add_model(name=self._name or str(model.name), tags=self._tags,
                                config=_keras.run_config(model, self.params, self._settings()),
                                labels=labels.mapping if labels is not None else None)

    @staticmethod
    def _check_archivable(model: Any) -> None:
        """Fail before training, not at the first checkpoint, when Keras cannot write a ``.keras`` archive."""
        try:
            model.get_config()
        except Exception as e:  # Keras raises NotImplementedError; custom get_config() may raise anything
            why = " ".join(str(e).split())[:240]
            raise InvalidArgumentError(
                f"Keras cannot write a .keras archive of model {model.name!r} ({type(model).__name__}): "
                f"get_config() failed with {type(e).__name__}: {why} Implement "
                "get_config() (and register the class with @keras.saving.register_keras_serializable()), or "
                "pass save_weights_only=True to record model.safetensors only.") from e

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        """Remember the epoch (for batch-level checkpoints' metadata)."""
        self._epoch = epoch

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        """Capture a checkpoint with ``save_freq="epoch"``."""
        if self._chief and self._save_freq == "epoch":
            self._capture(iteration=epoch + 1, logs=logs or {})

    def _on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        """Count batches and capture every ``save_freq`` of them (installed only with ``save_freq=N``)."""
        # `batch` restarts at 0 each epoch and may jump by steps_per_execution, as in Keras's ModelCheckpoint.
        added = batch + 1 if batch <= self._last_batch else batch - self._last_batch
        self._last_batch = batch
        self._step += added
        self._since_save += added
        if self._since_save < self._save_freq or not self._chief:  # type: ignore[operator]
            return
        self._since_save = 0
        self._capture(iteration=self._step, logs=logs or {})

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        """End the run: wait for its uploads (unless told not to), close a task created for it, tidy up."""
        if self._chief and self.recorder is not None:
            self.recorder.finish(wait=self._wait)

    def _capture(self, *, iteration: int, logs: Mapping[str, Any]) -> None:
        recorder = self.recorder
        assert recorder is not None  # created in on_train_begin on the chief
        record, is_best, score = self._ranking.consider(logs)
        if not record:
            return
        folder = recorder.scratch_dir(prefix="modelyard-keras-")
        save_weights(self.model, folder / WEIGHTS_FILE)
        if not self._save_weights_only:
            self.model.save(folder / ARCHIVE_FILE)
        version = recorder.record(
            folder, iteration=iteration, metrics=logs, monitor=self._ranking.monitor,
            metadata={"mode": self._ranking.mode, "epoch": self._epoch + 1, "global_step": self._optimizer_step(),
                      "files": [WEIGHTS_FILE] if self._save_weights_only else [WEIGHTS_FILE, ARCHIVE_FILE]},
            tags=[LAST_TAG, BEST_TAG] if is_best else [LAST_TAG], target_filename=PACKAGE_NAME,
            auto_delete=True, snapshot="auto")
        for displaced in self._ranking.add(version.version, score):  # keep_top_k, mirrored in storage
            recorder.drop(displaced)

    def _optimizer_step(self) -> int | None:
        iterations = getattr(getattr(self.model, "optimizer", None), "iterations", None)
        return None if iterations is None else int(keras.ops.convert_to_numpy(iterations.value))
