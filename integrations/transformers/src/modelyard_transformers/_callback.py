"""``ModelyardCallback``: records every ``Trainer`` checkpoint, the model config and labels in modelyard."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
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
BEST, LAST, FINAL = "best", "last", "final"


class ModelyardCallback(TrainerCallback):
    """Record a ``Trainer`` run in modelyard: every checkpoint, the model config, labels and the final model.

    One :class:`modelyard.OutputModel` per ``train()`` call. Every save turns the ``checkpoint-N`` folder into
    a package version (``iteration`` = the global step) in the caller's thread with hardlinks only, so the
    upload runs in the background and ``save_total_limit`` rotation cannot tear it. Only the world process
    zero records anything.

    Args:
        task: The task the model belongs to (default: the current task, else a new one).
        output_model: Record into this model instead of creating one (its config and labels are filled in
            when it has none).
        name: The model name (default: ``args.run_name``, else the task's name).
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
        self._reset()

    def _reset(self) -> None:
        self._model: modelyard.OutputModel | None = None
        self._arguments: dict[str, Any] = {}
        #: version number -> the local checkpoint folder it was taken from (absolute)
        self._checkpoints: dict[int, str] = {}
        #: global step -> the evaluation metrics logged at that step
        self._metrics: dict[int, dict[str, float]] = {}
        self._last: tuple[int, int] | None = None  # (global step, version) of the newest checkpoint
        self._best: int | None = None
        self._config: dict[str, Any] | None = None  # the model config as last recorded

    @property
    def output_model(self) -> modelyard.OutputModel | None:
        """The model this run records into (``None`` before training starts, and on other processes)."""
        return self._model

    # -- Trainer events -----------------------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        """Create the run's model with the model config, the labels and the scrubbed training arguments."""
        if not state.is_world_process_zero:
            return
        self._reset()
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
        if self._model is None:
            self._start(args, model)
        out = self._require_model()
        if self._config is not None:
            self._sync_config(model)
        step = int(state.global_step)
        folder = self._checkpoint_folder(args, state)
        metadata = {**self._step_metadata(args, step, state), "kind": "checkpoint",
                    "training_state": self._include_training_state}
        uri = out.update_weights_package(
            weights_path=folder, upload_uri=self._upload_uri, target_filename=os.path.basename(folder),
            auto_delete_file=False, iteration=step, metadata=metadata, version_tags=[LAST], snapshot="link",
            exclude=excluded_files(self._include_training_state))
        version = self._version_at(uri)
        out.set_version_tags(version, add=[LAST], exclusive=True)
        self._checkpoints[version] = folder
        self._last = (step, version)
        self._tag_best(args, state)
        self._mirror(args, at_end=False)

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None,
                     processing_class: Any = None, **kwargs: Any) -> None:
        """Tag the best and the final model, and mirror the Trainer's last clean-up."""
        if not state.is_world_process_zero or self._model is None:
            return
        self._tag_best(args, state)
        self._mirror(args, at_end=True)
        if self._record_final:
            self._record_final_model(args, state, model, kwargs.get("tokenizer") or processing_class)

    # -- helpers ------------------------------------------------------------------------------------

    def _require_model(self) -> modelyard.OutputModel:
        if self._model is None:  # pragma: no cover - _start always sets it
            raise modelyard.InvalidArgumentError("ModelyardCallback has no model: training has not started")
        return self._model

    def _sync_config(self, model: Any) -> None:
        """Record the model config again when training changed it.

        ``save_pretrained`` sets ``architectures``, the first forward pass ``problem_type``.
        """
        config_dict = _config_dict(model)
        if config_dict and config_dict != self._config:
            self._require_model().update_design(config_dict=config_dict)
            self._config = config_dict

    def _start(self, args: Any, model: Any) -> None:
        config = getattr(model, "config", None)
        config_dict = _config_dict(model)
        labels = self._labels if self._labels is not None else labels_from_config(config)
        self._arguments = scrub_arguments(args.to_dict()) if hasattr(args, "to_dict") else {}
        if self._injected is not None:
            out = self._injected
            if config_dict and not out.config_text:
                out.update_design(config_dict=config_dict)
                self._config = config_dict
            if labels is not None and (self._labels is not None or not out.labels):
                out.update_labels(labels)
        else:
            task = self._task or modelyard.Task.current_task()
            if task is None:
                task = modelyard.Task.init(project_name=self._project,
                                           task_name=getattr(args, "run_name", None))
            out = modelyard.OutputModel(
                task, config_dict=config_dict, label_enumeration=labels,
                name=self._name or getattr(args, "run_name", None), tags=self._tags, comment=self._comment,
                framework=FRAMEWORK)
            self._config = config_dict
        self._model = out

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

    def _step_metadata(self, args: Any, step: int, state: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {"global_step": step, "transformers_version": transformers.__version__,
                                "training_args": self._arguments}
        if state.epoch is not None:
            meta["epoch"] = float(state.epoch)
        metrics = self._metrics.get(step)
        if metrics:
            meta["metrics"] = metrics
        monitor = self._monitor(args)
        if monitor:
            meta["monitor"] = monitor
            meta["greater_is_better"] = bool(getattr(args, "greater_is_better", False))
            if metrics and monitor in metrics:
                meta["score"] = metrics[monitor]
        return meta

    def _version_at(self, uri: str) -> int:
        for v in reversed(self._require_model().versions):
            if v.uri == uri:
                return v.version
        raise modelyard.NotFoundError(f"the version just recorded at {uri} is missing from the registry")

    def _version_of_folder(self, folder: str | None) -> int | None:
        if not folder:
            return None
        wanted = os.path.abspath(folder)
        for version, recorded in self._checkpoints.items():
            if recorded == wanted:
                return version
        return None

    def _tag_best(self, args: Any, state: Any) -> None:
        if self._monitor(args) is None:
            return  # the Trainer tracks a best checkpoint only when metric_for_best_model is set
        version = self._version_of_folder(getattr(state, "best_model_checkpoint", None))
        if version is None or version == self._best:
            return
        self._require_model().set_version_tags(version, add=[BEST], exclusive=True)
        self._best = version

    def _mirror(self, args: Any, *, at_end: bool) -> None:
        """Remove the versions whose local checkpoint the Trainer rotated away."""
        limit = getattr(args, "save_total_limit", None)
        if not self._mirror_retention or not limit or limit <= 0:
            return  # without a limit the Trainer deletes nothing, so a vanished folder is not rotation
        gone = [v for v, folder in self._checkpoints.items() if not os.path.isdir(folder)]
        if not gone:
            return
        out = self._require_model()
        rows = {v.version: v for v in out.versions}
        for version in gone:
            row = rows.get(version)
            if row is None:  # removed by someone else already
                del self._checkpoints[version]
                continue
            if BEST in row.tags or FINAL in row.tags:
                continue
            if row.state in ("pending", "uploading") and not at_end:
                continue  # removing now would wait for the upload: never stall training; retried next save
            if out.remove_version(version):
                del self._checkpoints[version]
            # False: pinned or published; kept, and looked at again later (it may be unpinned)

    def _record_final_model(self, args: Any, state: Any, model: Any, processor: Any) -> None:
        out = self._require_model()
        version: int | None = None
        best = getattr(state, "best_model_checkpoint", None)
        if getattr(args, "load_best_model_at_end", False) and best:
            # The Trainer reloaded the best checkpoint: the final model is that version, byte for byte.
            version = self._version_of_folder(best)
        elif self._last is not None and self._last[0] == state.global_step:
            version = self._last[1] if self._last[1] in self._checkpoints else None
        if version is None:
            if model is None or not hasattr(model, "save_pretrained"):
                raise modelyard.InvalidArgumentError(
                    "ModelyardCallback cannot record the final model: the Trainer passed no model with "
                    "save_pretrained to on_train_end; pass record_final=False")
            version = self._save_final(state, model, processor)
        out.set_version_tags(version, add=[FINAL], exclusive=True)

    def _save_final(self, state: Any, model: Any, processor: Any) -> int:
        """Save the in-memory model (no second Trainer) and record it; the files are removed once uploaded."""
        out = self._require_model()
        folder = tempfile.mkdtemp(prefix="modelyard-final-")
        try:
            model.save_pretrained(folder)
            if processor is not None and hasattr(processor, "save_pretrained"):
                processor.save_pretrained(folder)
            step = int(state.global_step)
            metadata = {"global_step": step, "transformers_version": transformers.__version__,
                        "training_args": self._arguments, "kind": "final", "training_state": False}
            uri = out.update_weights_package(
                weights_path=folder, upload_uri=self._upload_uri, target_filename=FINAL,
                auto_delete_file=True, iteration=step, metadata=metadata, version_tags=[FINAL],
                snapshot="link")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        # The files are deleted once their upload is durable (kept if it fails); the emptied folder goes at
        # exit, after modelyard has drained its uploads.
        atexit.register(_remove_if_empty, folder)
        return self._version_at(uri)


def _config_dict(model: Any) -> dict[str, Any] | None:
    config = getattr(model, "config", None)
    to_dict = getattr(config, "to_dict", None)
    return to_dict() if callable(to_dict) else None


def _remove_if_empty(folder: str) -> None:
    with contextlib.suppress(OSError):  # not empty: an upload failed and the files are the only copy
        os.rmdir(folder)
