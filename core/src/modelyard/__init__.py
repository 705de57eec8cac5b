"""modelyard: a model-output registry with ClearML ``OutputModel`` semantics, from any training loop.

Example:
    >>> from modelyard import OutputModel, Task
    >>> task = Task.init(project_name="demo", task_name="run-1")
    >>> out = OutputModel(task, config_dict={"lr": 0.1}, label_enumeration={"bg": 0, "person": 1})
    >>> out.update_weights("model.safetensors", iteration=10)  # returns at once; uploads in the background
"""

from importlib.metadata import PackageNotFoundError, version

from ._capture import (
    check_labels_fit,
    discover_labels,
    json_safe,
    labels_from,
    labels_from_id2label,
)
from ._checkpoints import pick_version, version_file
from ._errors import (
    ArchiveError,
    ConfigError,
    DestinationError,
    FormatError,
    IntegrationImportError,
    IntegrityError,
    InvalidArgumentError,
    LabelError,
    MissingDependencyError,
    ModelyardError,
    NotFoundError,
    PublishedModelError,
    RegistryError,
    StorageError,
    UnknownIntegrationError,
    UnsafeFormatError,
    UploadError,
)
from ._labels import labels_from_names, validate_labels
from ._model import InputModel, Model
from ._output_model import OutputModel
from ._plugins import available_integrations, get_callback_class
from ._ranking import CheckpointRanking
from ._recording import BEST_TAG, FINAL_TAG, LAST_TAG, TrainingRecorder
from ._sniff import sniff_format
from ._task import Task
from ._uploads import enable_graceful_shutdown, sync
from ._versions import ModelVersion
from ._weights import load_weights, save_safetensors
from .hookspecs import RegisterIntegration, hookimpl

try:
    __version__ = version("modelyard")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

__all__ = [
    "ArchiveError",
    "BEST_TAG",
    "CheckpointRanking",
    "ConfigError",
    "DestinationError",
    "FINAL_TAG",
    "FormatError",
    "InputModel",
    "IntegrationImportError",
    "IntegrityError",
    "InvalidArgumentError",
    "LAST_TAG",
    "LabelError",
    "MissingDependencyError",
    "Model",
    "ModelVersion",
    "ModelyardError",
    "NotFoundError",
    "OutputModel",
    "PublishedModelError",
    "RegisterIntegration",
    "RegistryError",
    "StorageError",
    "Task",
    "TrainingRecorder",
    "UnknownIntegrationError",
    "UnsafeFormatError",
    "UploadError",
    "__version__",
    "available_integrations",
    "check_labels_fit",
    "discover_labels",
    "enable_graceful_shutdown",
    "get_callback_class",
    "hookimpl",
    "json_safe",
    "labels_from",
    "labels_from_id2label",
    "labels_from_names",
    "load_weights",
    "pick_version",
    "save_safetensors",
    "sniff_format",
    "sync",
    "validate_labels",
    "version_file",
]
