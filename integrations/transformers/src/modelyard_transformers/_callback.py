"""``ModelyardCallback``: records every ``Trainer`` checkpoint, the model config and labels in modelyard."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import modelyard

from ._capture import excluded_files, labels_from_config, scrub_arguments

try:
    import transformers
    from transformers import TrainerCallback
except ImportError as e:  # pragma: no cover - exercised only without transformers installed
    raise modelyard.MissingDependencyError(
        "modelyard_transformers.ModelyardCallback needs transformers and torch: install them with "
        "`pip install modelyard-transformers` (or `pip install 'transformers>=4.40' torch`)") from e

#: The framework name recorded on every model this callback creates.
FRAMEWORK = "transformers"
CHECKPOINT_PREFIX = "checkpoint-"
BEST, LAST, FINAL = modelyard.BEST_TAG, modelyard.LAST_TAG, modelyard.FINAL_TAG


class ModelyardCallback(TrainerCallback):
    """Record a ``Trainer`` run in modelyard: every checkpoint, the model config, labels and the final model.

    One :class:`modelyard.OutputModel` per ``train()`` call, kept by a :class:`modelyard.TrainingRecorder`
    (task ownership, tags, retention, waiting: the rules every integration shares). Every save turns the
    ``checkpoint-N`` folder into a package version (``iteration`` = the global step) in the caller's thread
    with hardlinks only, so the upload runs in the background and ``save_total_limit`` rotation cannot tear
    it. Only the world process zero records anything; ``train()`` returns once the run's uploads are done.

    Args:
        task: The task the model belongs to (default: the current task, else a new one named after
            ``args.run_name``, closed when training ends).
        output_model: Record into this model instead of creating one (its config and labels are filled in
            when it has none).
        name: The model name (default: the model's class name).
        project: The project of the task created when there is no current task.
        tags: Tags of the created model.
        comment: A description of the created model.
        label_enumeration: Label name to integer id; wins over the model config's ``id2label``.
        include_training_state: Store whole checkpoints (resumable with :func:`checkpoint_path`). ``False``
            stores only what ``from_pretrained`` needs: weights, configs, tokenizer and processor files.
        mirror_retention: Remove from storage the checkpoints that ``save_total_limit`` rotates away locally
            (never a published, pinned, ``best`` or ``final`` version). ``False`` keeps every version.
        record_final: Tag the final model ``final`` at the end of training (the checkpoint holding its
            weights, or a new version saved with ``save_pretrained`` when no checkpoint does).
        upload_uri: Where the versions upload (default: the task's or modelyard's default destination).

    Raises:
        LabelError: ``label_enumeration`` is not a valid label enumeration.
    """

    def __init__(self, *, task: modelyard.Task | None = None,
                 output_model: modelyard.OutputModel | None = None, name: str | None = None,
                 project: str | None = None, tags: Sequence[str] | None = None, comment: str | None = None,
                 label_enumeration: Mapping[str, int] | None = None, include_training_state: bool = True,
                 mirror_retention: bool = True, record_final: bool = True,
                 upload_uri: str | None = None) -> None:
        if task is not None and not isinstance(task, modelyard.Task):
            raise modelyard.InvalidArgumentError(f"task must be a modelyard Task, got {type(task).__name__}")
        self._task = task
        self._injected = output_model
        self._name = name
        self._project = project
        self._tags = list(tags) if tags is not None else None
        self._comment = comment
        self._labels = modelyard.validate_labels(label_enumeration) if label_enumeration is not None else None
        self._include_training_state = bool(include_training_state)
        self._mirror_retention = bool(mirror_retention)
        self._record_final = bool(record_final)
        self._upload_uri = upload_uri
        self._recorder: modelyard.TrainingRecorder | None = None
        self._reset()

    def _reset(self) -> None:
        self._arguments: dict[str, Any] = {}
        #: version number -> the local checkpoint folder it was taken from (absolute)
        self._checkpoints: dict[int, str] = {}
        #: global step -> the evaluation metrics logged at that step
        self._metrics: dict[int, dict[str, float]] = {}
        self._last: tuple[int, int] | None = None  # (global step, version) of the newest checkpoint
        self._config: dict[str, Any] | None = None  # the model config as last recorded

    @property
    def output_model(self) -> modelyard.OutputModel | None:
        """The model this run records into (``None`` before training starts, and on other processes)."""
        return self._recorder.models.get(None) if self._recorder is not None else None

    @property
    def recorder(self) -> modelyard.TrainingRecorder | None:
        """The recorder of the current (or last) run."""
        return self._recorder

    # -- Trainer events -----------------------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        """Create the run's model with the model config, the labels and the scrubbed training arguments."""
        if not state.is_world_process_zero:
            return
        self._start(args, model)

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Mapping[str, Any] | None = None,
                    **kwargs: Any) -> None:
        """Remember the evaluation metrics of this step, for the checkpoint saved next."""
        if not state.is_world_process_zero or not metrics:
            return
        self._metrics[state.global_step] = {
            str(k): float(v) for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)}

    def on_save(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        """Record the checkpoint the Trainer just saved, then mirror its rotation."""
        if not state.is_world_process_zero:
            return
        if self._recorder is None or self._recorder.finished:
            self._start(args, model)
        recorder = self._require()
        if self._config is not None:
            self._sync_config(model)
        step = int(state.global_step)
        folder = self._checkpoint_folder(args, state)
        version = recorder.record(
            folder, iteration=step, metrics=self._metrics.get(step), monitor=self._monitor(args),
            metadata={**self._step_metadata(args, state), "kind": "checkpoint",
                      "training_state": self._include_training_state},
            tags=[LAST], target_filename=os.path.basename(folder),
            exclude=excluded_files(self._include_training_state))
        self._checkpoints[version.version] = folder
        self._last = (step, version.version)
        self._tag_best(args, state)
        self._mirror(args)

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None,
                     processing_class: Any = None, **kwargs: Any) -> None:
        """Tag the best and the final model, mirror the last clean-up, and wait for the run's uploads.

        Raises:
            UploadError: An upload of this run failed (a task created here is marked failed).
        """
        recorder = self._recorder
        if not state.is_world_process_zero or recorder is None or recorder.finished:
            return
        try:
            self._tag_best(args, state)
            self._mirror(args)
            if self._record_final:
                self._record_final_model(args, state, model, kwargs.get("tokenizer") or processing_class)
        except BaseException as e:
            recorder.finish(e)
            raise
        recorder.finish()

    # -- helpers ------------------------------------------------------------------------------------

    def _require(self) -> modelyard.TrainingRecorder:
        if self._recorder is None:  # pragma: no cover - _start always sets it
            raise modelyard.InvalidArgumentError("ModelyardCallback has no model: training has not started")
        return self._recorder

    def _sync_config(self, model: Any) -> None:
        """Record the model config again when training changed it.

        ``save_pretrained`` sets ``architectures``, the first forward pass ``problem_type``.
        """
        config_dict = _config_dict(model)
        if config_dict and config_dict != self._config:
            self._require().model().update_design(config_dict=config_dict)
            self._config = config_dict

    def _start(self, args: Any, model: Any) -> None:
        if self._recorder is not None and not self._recorder.finished:
            self._recorder.finish(RuntimeError("a new train() started before the previous one ended"))
        self._reset()
        config_dict = _config_dict(model)
        labels = self._labels if self._labels is not None else labels_from_config(getattr(model, "config", None))
        self._arguments = scrub_arguments(args.to_dict()) if hasattr(args, "to_dict") else {}
        recorder = modelyard.TrainingRecorder(framework=FRAMEWORK, task=self._task, project=self._project,
                                              task_name=getattr(args, "run_name", None),
                                              upload_uri=self._upload_uri)
        self._recorder = recorder
        out = recorder.add_model(name=self._name or type(model).__name__, config=config_dict, labels=labels,
                                 tags=self._tags, comment=self._comment, model=self._injected)
        if self._injected is not None and self._labels is not None:
            out.update_labels(self._labels)  # an explicit label_enumeration wins over the model's own
        if self._injected is None or out.config_dict == config_dict:
            self._config = config_dict

    def _checkpoint_folder(self, args: Any, state: Any) -> str:
        name = f"{CHECKPOINT_PREFIX}{state.global_step}"
        candidates = [os.path.join(args.output_dir, name)]
        trial = getattr(state, "trial_name", None)
        if trial:  # hyperparameter search runs save under output_dir/<trial name>/
            candidates.append(os.path.join(args.output_dir, str(trial), name))
        for candidate in candidates:
            if os.path.isdir(candidate):
                return os.path.abspath(candidate)
        raise modelyard.NotFoundError(
            f"ModelyardCallback found no checkpoint folder {name!r} under {args.output_dir!r} after the "
            "Trainer saved; it records the Trainer's own checkpoints from args.output_dir")

    def _monitor(self, args: Any) -> str | None:
        metric = getattr(args, "metric_for_best_model", None)
        if not metric:
            return None
        return metric if str(metric).startswith("eval_") else f"eval_{metric}"

    def _step_metadata(self, args: Any, state: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {"global_step": int(state.global_step),
                                "transformers_version": transformers.__version__,
                                "training_args": self._arguments}
        if state.epoch is not None:
            meta["epoch"] = float(state.epoch)
        if self._monitor(args):
            meta["greater_is_better"] = bool(getattr(args, "greater_is_better", False))
        return meta

    def _version_of_folder(self, folder: str | None) -> int | None:
        if not folder:
            return None
        wanted = os.path.abspath(folder)
        return next((v for v, recorded in self._checkpoints.items() if recorded == wanted), None)

    def _tag_best(self, args: Any, state: Any) -> None:
        if self._monitor(args) is None:
            return  # the Trainer tracks a best checkpoint only when metric_for_best_model is set
        version = self._version_of_folder(getattr(state, "best_model_checkpoint", None))
        if version is not None:
            self._require().tag(version, BEST)

    def _mirror(self, args: Any) -> None:
        """Hand the versions whose local checkpoint the Trainer rotated away to the recorder's retention."""
        limit = getattr(args, "save_total_limit", None)
        if not self._mirror_retention or not limit or limit <= 0:
            return  # without a limit the Trainer deletes nothing, so a vanished folder is not rotation
        for version, folder in list(self._checkpoints.items()):
            if not os.path.isdir(folder):
                del self._checkpoints[version]
                self._require().drop(version)

    def _record_final_model(self, args: Any, state: Any, model: Any, processor: Any) -> None:
        recorder = self._require()
        version: int | None = None
        best = getattr(state, "best_model_checkpoint", None)
        if getattr(args, "load_best_model_at_end", False) and best:
            # The Trainer reloaded the best checkpoint: the final model is that version, byte for byte.
            version = self._version_of_folder(best)
        elif self._last is not None and self._last[0] == state.global_step:
            version = self._last[1] if self._last[1] in self._checkpoints else None
        if version is not None:
            recorder.tag(version, FINAL)
            return
        if model is None or not hasattr(model, "save_pretrained"):
            raise modelyard.InvalidArgumentError(
                "ModelyardCallback cannot record the final model: the Trainer passed no model with "
                "save_pretrained to on_train_end; pass record_final=False")
        # The in-memory model (no second Trainer), in a scratch folder the recorder removes once uploaded.
        folder = recorder.scratch_dir(prefix="modelyard-final-")
        model.save_pretrained(folder)
        if processor is not None and hasattr(processor, "save_pretrained"):
            processor.save_pretrained(folder)
        recorder.record(folder, iteration=int(state.global_step), tags=[FINAL], target_filename=FINAL,
                        metadata={**self._step_metadata(args, state), "kind": "final", "training_state": False})


def _config_dict(model: Any) -> dict[str, Any] | None:
    config = getattr(model, "config", None)
    to_dict = getattr(config, "to_dict", None)
    return to_dict() if callable(to_dict) else None
