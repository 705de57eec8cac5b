"""Typed errors raised by modelyard.

Every error derives from :class:`ModelyardError`. Errors caused by the caller's arguments also derive from
:class:`ValueError`, so code written against ClearML's ``OutputModel`` (which raises ``ValueError``) keeps
working. Messages name the model, the file and the next step.
"""

from __future__ import annotations


def short_repr(value: object, limit: int = 60) -> str:
    """Return a repr of ``value`` cut to ``limit`` characters, for messages that quote hostile input."""
    try:
        text = repr(value)
    except ValueError:  # ints beyond Python's 4300-digit conversion limit
        return f"<a {type(value).__name__} too large to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ModelyardError(Exception):
    """Base class of every error raised by modelyard."""


class InvalidArgumentError(ModelyardError, ValueError):
    """An argument, or a combination of arguments, is not acceptable."""


class ConfigError(InvalidArgumentError):
    """A model configuration cannot be serialised or parsed."""


class LabelError(InvalidArgumentError):
    """A label enumeration is not a mapping of non-empty strings to unique integers."""


class PublishedModelError(InvalidArgumentError):
    """A published model was asked to change; published models are immutable."""


class NotFoundError(InvalidArgumentError, LookupError):
    """No model, task or version matches the request."""


class DestinationError(InvalidArgumentError):
    """A storage destination or a stored URI is unsupported or outside the allowed destinations."""


class ArchiveError(InvalidArgumentError):
    """An archive is unsafe (traversal, links, bombs, colliding names) or malformed."""


class FormatError(InvalidArgumentError):
    """A weights file is malformed (for example a truncated or inconsistent safetensors file)."""


class UnsafeFormatError(InvalidArgumentError):
    """A weights file needs code execution to load (pickle) and the call did not opt in."""


class IntegrityError(ModelyardError):
    """Stored bytes do not match the size or sha256 recorded for them."""


class StorageError(ModelyardError):
    """A storage operation failed."""


class UploadError(ModelyardError):
    """A background upload failed.

    Attributes:
        model_id: The id of the model whose version failed.
        file_name: The name of the file that was being uploaded.
        version: The version number that failed.
        cause: The text of the underlying error.
    """

    def __init__(self, message: str, *, model_id: str = "", file_name: str = "", version: int = 0,
                 cause: str = "") -> None:
        super().__init__(message)
        self.model_id = model_id
        self.file_name = file_name
        self.version = version
        self.cause = cause


class RegistryError(ModelyardError):
    """The registry cannot be opened or its schema is newer than this modelyard understands."""


class MissingDependencyError(ModelyardError, ImportError):
    """An optional dependency is needed for this operation and is not installed."""


class UnknownIntegrationError(InvalidArgumentError, LookupError):
    """No installed integration has the requested name."""


class IntegrationImportError(ModelyardError, ImportError):
    """An installed integration failed to import (usually its framework is missing or broken)."""
