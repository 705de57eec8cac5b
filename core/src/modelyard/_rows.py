"""Typed rows: what `modelyard._registry.Registry` returns, decoded once at the boundary.

JSON columns come back as Python lists and dicts, booleans as `bool`; the ``*_key`` digest columns stay inside
the store. Every field is still untrusted (RELIABILITY.md invariant 1): a tampered row decodes to whatever it
holds, and callers validate URIs and names before they touch storage.

Rows are read by attribute (``row.name``) only: they are not mappings, so a ``row["name"]`` left anywhere fails
loudly instead of hiding a misspelt column.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache
from typing import Any, TypeVar

from ._errors import RegistryError

#: Columns stored as JSON text.
JSON_COLUMNS = frozenset({"tags", "system_tags", "labels", "meta", "job"})

#: Columns stored as booleans (SQLite hands back 0 and 1).
_BOOLEAN_COLUMNS = frozenset({"published", "archived", "pinned"})

_R = TypeVar("_R", bound="_Row")


class Unset(enum.Enum):
    """The type of `UNSET`: a keyword argument that was not given (``None`` is a value: SQL NULL)."""

    UNSET = "UNSET"


#: "Leave this column as it is", the default of every optional argument of the ``update_*`` methods.
UNSET = Unset.UNSET


@cache
def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def decode_json(column: str, text: Any) -> Any:
    """Decode one JSON column value; `RegistryError` when the stored text is not JSON."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError) as e:
        raise RegistryError(f"registry column {column!r} holds invalid JSON: {e}") from e


class _Row:
    """The base of the row dataclasses: how a database row becomes one."""

    @classmethod
    def from_mapping(cls: type[_R], row: Mapping[str, Any]) -> _R:
        """Build from a database row (a SQLAlchemy ``RowMapping``), decoding JSON and boolean columns."""
        values = {}
        for name in _names(cls):
            value = row[name]
            if name in JSON_COLUMNS:
                value = decode_json(name, value)
            elif name in _BOOLEAN_COLUMNS and value is not None:
                value = bool(value)
            values[name] = value
        return cls(**values)


@dataclass(frozen=True, eq=True)
class TaskRow(_Row):
    """A task (run) row."""

    id: str
    project: str
    name: str
    status: str
    output_uri: str | None
    tags: list[str]
    created: float
    updated: float


@dataclass(frozen=True, eq=True)
class TaskLinkRow(_Row):
    """That a task used (``role="input"``) or produced (``"output"``) a model."""

    task_id: str
    model_id: str
    role: str
    name: str | None
    created: float


@dataclass(frozen=True, eq=True)
class ModelRow(_Row):
    """A model row (its versions are `VersionRow`)."""

    id: str
    task_id: str | None
    project: str
    name: str
    comment: str
    framework: str | None
    config_text: str | None
    labels: dict[str, int] | None
    tags: list[str]
    system_tags: list[str]
    published: bool
    archived: bool
    base_model_id: str | None
    upload_uri: str | None
    version_count: int
    created: float
    updated: float


@dataclass(frozen=True, eq=True)
class VersionRow(_Row):
    """A weights version row, with its upload journal (``job``, ``owner``, ``host``)."""

    id: int
    model_id: str
    version: int
    iteration: int | None
    uri: str
    file_name: str
    package_format: str | None
    size: int | None
    sha256: str | None
    state: str
    error: str | None
    tags: list[str]
    meta: dict[str, Any]
    pinned: bool
    job: dict[str, Any] | None
    owner: str | None
    host: str | None
    created: float
    updated: float


@dataclass(frozen=True, eq=True)
class StoredObject(_Row):
    """What a version says about its stored object: enough to verify it or to find orphans, at any scale."""

    id: int
    model_id: str
    version: int
    uri: str
    size: int | None
    sha256: str | None
    state: str
    package_format: str | None


@dataclass(frozen=True, eq=True)
class WriteContext(_Row):
    """What recording a version needs to know of its model and task, read in one statement.

    Attributes:
        name: The model's name.
        project: The model's project.
        comment: The model's comment.
        system_tags: The model's system tags.
        upload_uri: The model's own destination, if set.
        published: Whether the model is published (then no version may be added).
        task_name: The task's name (part of the object key).
        task_output_uri: The task's destination, if set.
    """

    name: str
    project: str
    comment: str
    system_tags: list[str]
    upload_uri: str | None
    published: bool
    task_name: str
    task_output_uri: str | None
