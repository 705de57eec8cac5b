"""Tasks: the run record every model hangs off (ClearML's ``Task``, reduced to what models need).

The task layer sits below the model layer and never imports it: ``Task.models`` and ``Task.connect`` use the
model class that ``modelyard._model`` installs with `install_model_class` when it is imported.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ._errors import InvalidArgumentError, NotFoundError, UploadError
from ._registry import get_registry
from ._rows import TaskRow
from ._storage import normalize_destination
from ._uploads import get_engine

if TYPE_CHECKING:
    from ._model import Model

DEFAULT_PROJECT = "default"

#: The model layer's base class, installed by ``modelyard._model`` (imported by ``import modelyard``).
_model_class: type[Model] | None = None


def install_model_class(cls: type[Model]) -> None:
    """Tell the task layer which class models are (called once by the model layer at import).

    The class must take a model id, have an ``id`` and a ``_task_role`` (``"input"`` or ``"output"``): the
    role a model has when connected to a task.
    """
    global _model_class
    _model_class = cls


def _models() -> type[Model]:
    if _model_class is None:  # pragma: no cover - ``import modelyard`` installs it before any Task exists
        raise RuntimeError("modelyard._model was not imported; import modelyard first")
    return _model_class


def _check_text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentError(f"{what} must be a non-empty string, got {value!r}")
    if "\x00" in value:
        raise InvalidArgumentError(f"{what} must not contain NUL characters")
    return value


def check_tags(tags: Iterable[str] | None, what: str = "tags") -> list[str]:
    """Validate a list of tags: non-empty strings without NUL; order kept, duplicates dropped."""
    if tags is None:
        return []
    if isinstance(tags, str):
        raise InvalidArgumentError(f"{what} must be a list of strings, not a single string {tags!r}")
    out = [_check_text(t, f"each of {what}") for t in tags]
    return list(dict.fromkeys(out))


def default_task_name() -> str:
    """Name a task after the running script, as ClearML does."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    stem = Path(argv0).stem
    return stem if stem and stem not in ("-c", "-m", "") else "interactive"


class Task:
    """A training run: the project and name that models are filed under, and where they upload.

    Create one with :meth:`Task.init`; the newest one becomes the process's current task, which
    ``OutputModel(task=None)`` uses.
    """

    _current: ClassVar[Task | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, task_id: str, *, registry_url: str | None = None) -> None:
        self._registry = get_registry(registry_url)
        self._id = task_id
        #: Why the task ended as it did, when :meth:`mark_failed` was told (this process only).
        self.status_reason: str | None = None
        self._registry.get_task(task_id)  # fail now, not on first property access

    def __repr__(self) -> str:
        return f"Task(id={self._id!r}, project={self.project!r}, name={self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and other._id == self._id

    def __hash__(self) -> int:
        return hash(self._id)

    # -- constructors -------------------------------------------------------------------------------

    @classmethod
    def init(cls, project_name: str | None = None, task_name: str | None = None,
             output_uri: str | bool | None = None, tags: Sequence[str] | None = None) -> Task:
        """Create a task and make it the process's current task.

        Args:
            project_name: The project (default ``"default"``).
            task_name: The task name (default: the running script's name).
            output_uri: Where this task's models upload (``True``: the default destination).
            tags: Tags for the task.

        Returns:
            The new task.
        """
        project = _check_text(project_name, "project_name") if project_name is not None else DEFAULT_PROJECT
        name = _check_text(task_name, "task_name") if task_name is not None else default_task_name()
        uri = None
        if isinstance(output_uri, str):
            uri = normalize_destination(output_uri)
        elif output_uri not in (None, True, False):
            raise InvalidArgumentError(f"output_uri must be a string, True or None, got {output_uri!r}")
        registry = get_registry()
        task_id = uuid.uuid4().hex
        registry.insert_task(id=task_id, project=project, name=name, status="in_progress", output_uri=uri,
                             tags=check_tags(tags))
        task = cls(task_id)
        with cls._lock:
            Task._current = task
        return task

    @classmethod
    def current_task(cls) -> Task | None:
        """Return the process's current task, or ``None``."""
        return Task._current

    @classmethod
    def get_task(cls, task_id: str | None = None, project_name: str | None = None,
                 task_name: str | None = None) -> Task:
        """Return a task by id, or the newest task with the given project and/or name.

        Raises:
            ValueError: No argument given, or no task matches.
        """
        if task_id is not None:
            return cls(task_id)
        if project_name is None and task_name is None:
            raise InvalidArgumentError("get_task needs task_id, or project_name and/or task_name")
        rows = get_registry().find_tasks(project=project_name, name=task_name, limit=1)
        if not rows:
            raise NotFoundError(f"no task with project {project_name!r} and name {task_name!r}")
        return cls(rows[0].id)

    # -- properties ---------------------------------------------------------------------------------

    def _row(self) -> TaskRow:
        return self._registry.get_task(self._id)

    @property
    def id(self) -> str:
        """The task id (32 hex characters)."""
        return self._id

    @property
    def name(self) -> str:
        """The task name."""
        return str(self._row().name)

    @property
    def project(self) -> str:
        """The project name."""
        return str(self._row().project)

    @property
    def status(self) -> str:
        """``in_progress``, ``completed`` or ``failed``."""
        return str(self._row().status)

    @property
    def tags(self) -> list[str]:
        """The task's tags."""
        return list(self._row().tags)

    @property
    def output_uri(self) -> str | None:
        """Where this task's models upload unless a model says otherwise."""
        return self._row().output_uri

    @output_uri.setter
    def output_uri(self, value: str | None) -> None:
        self._registry.update_task(self._id, output_uri=normalize_destination(value) if value else None)

    @property
    def models(self) -> dict[str, list[Model]]:
        """The models this task used (``"input"``) and produced (``"output"``), in connection order."""
        model_class = _models()
        out: dict[str, list[Model]] = {"input": [], "output": []}
        for link in self._registry.task_model_links(self._id):
            try:
                out[link.role].append(model_class(link.model_id))
            except NotFoundError:
                continue  # the model was removed since; the link is history
        return out

    # -- actions ------------------------------------------------------------------------------------

    def connect(self, model: Model, name: str | None = None) -> Model:
        """Connect a model to this task: an ``OutputModel`` as output, any other model as input.

        Returns:
            The model, for chaining.
        """
        if not isinstance(model, _models()):
            raise InvalidArgumentError(f"connect() takes a modelyard model, got {type(model).__name__}")
        self._registry.link_task_model(self._id, model.id, model._task_role, name)
        return model

    def close(self) -> None:
        """Wait for this process's uploads, then mark the task completed (or failed if an upload failed).

        Raises:
            UploadError: An upload failed; the task is marked ``failed``.
        """
        try:
            get_engine().wait()
        except UploadError:
            self._registry.update_task(self._id, status="failed")
            raise
        finally:
            with Task._lock:
                if Task._current is self or (Task._current is not None and Task._current.id == self._id):
                    Task._current = None
        self._registry.update_task(self._id, status="completed")

    def _forget_current(self) -> None:
        with Task._lock:
            if Task._current is not None and Task._current.id == self._id:
                Task._current = None

    def mark_completed(self) -> None:
        """Mark the task completed now, without waiting for uploads (unlike :meth:`close`).

        For callers that waited for the uploads they care about themselves (as
        :class:`~modelyard.TrainingRecorder` waits for its own): other runs' uploads in this process neither
        delay nor fail this task. The task stops being the process's current task.
        """
        self._registry.update_task(self._id, status="completed")
        self.status_reason = None
        self._forget_current()

    def mark_failed(self, status_reason: str | None = None) -> None:
        """Mark the task failed now, without waiting for uploads (for callers that catch a training error).

        Args:
            status_reason: Why it failed (ClearML's argument name), kept as :attr:`status_reason` on this
                object; the registry records the status only.
        """
        if status_reason is not None and not isinstance(status_reason, str):
            raise InvalidArgumentError(f"status_reason must be a string or None, got {status_reason!r}")
        self._registry.update_task(self._id, status="failed")
        self.status_reason = status_reason
        self._forget_current()
