"""The write path is short: what ``update_weights`` costs in the caller's thread, counted statement by statement.

The caller's thread is the training loop's: every registry round trip there is time the loop waits. The counts
come from SQLAlchemy's ``before_cursor_execute`` event on the registry's engine, which sees every statement sent
to the database (SQLite's ``BEGIN`` included); statements run by upload workers are not counted.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from modelyard import OutputModel, Task
from modelyard._registry import get_registry

#: The budget of issue 12 item 6 for one single-file ``update_weights`` after the first call of the process.
MAX_STATEMENTS = 5


@contextmanager
def caller_statements() -> Iterator[list[str]]:
    """Collect the registry statements this thread executes inside the block."""
    engine = get_registry().engine
    me = threading.get_ident()
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if threading.get_ident() == me:
            seen.append(" ".join(statement.split())[:120])

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def _versioned(out: OutputModel, make_weights: Any, **kwargs: Any) -> list[str]:
    with caller_statements() as seen:
        out.update_weights(make_weights(), **kwargs)
    return seen


def test_update_weights_costs_at_most_five_statements(registry_backend: str, make_weights: Any) -> None:
    task = Task.init(project_name="proj", task_name="run")
    out = OutputModel(task, name="counted")
    first = _versioned(out, make_weights, iteration=0)  # the process's first call records the destination
    later = [_versioned(out, make_weights, iteration=i) for i in range(1, 4)]
    OutputModel.wait_for_uploads()
    for seen in later:
        assert len(seen) <= MAX_STATEMENTS, seen
    assert len(first) <= MAX_STATEMENTS + 3, first
    # Only what the version needs: one read of the model and its task, one transaction that allocates the
    # number and inserts the row (the journal included); no re-read of the row just written.
    writes = [s for s in later[-1] if s.startswith(("INSERT", "UPDATE", "DELETE"))]
    assert [s.split()[0] + " " + s.split()[1 if s.startswith("UPDATE") else 2] for s in writes] == \
        ["UPDATE models", "INSERT versions"], later[-1]
    assert [v.version for v in out.versions] == [1, 2, 3, 4]
    assert [v.iteration for v in out.versions] == [0, 1, 2, 3]
    assert all(v.state == "ready" for v in out.versions)


def test_a_new_destination_is_recorded_once(registry_backend: str, make_weights: Any, tmp_path: Path) -> None:
    task = Task.init(project_name="proj", task_name="run")
    out = OutputModel(task, name="counted")
    out.update_weights(make_weights(), iteration=0)
    dest = (tmp_path / "elsewhere").as_uri()
    first = _versioned(out, make_weights, upload_uri=dest)
    again = _versioned(out, make_weights, upload_uri=dest)
    OutputModel.wait_for_uploads()
    assert any("destinations" in s for s in first), first
    assert not any("destinations" in s for s in again) and len(again) <= MAX_STATEMENTS, again
    assert out.url is not None and out.url.startswith(dest)


def test_the_returned_version_is_what_was_recorded(registry_backend: str, make_weights: Any) -> None:
    task = Task.init(project_name="proj", task_name="run")
    out = OutputModel(task, name="counted")
    version = out.add_version(make_weights(), iteration=5, metadata={"loss": 0.5}, version_tags=["best"])
    OutputModel.wait_for_uploads()
    (stored,) = out.versions
    assert (version.model_id, version.version, version.iteration, version.uri, version.file_name) == \
        (out.id, 1, 5, stored.uri, stored.file_name)
    assert version.state == "pending" and version.metadata == {"loss": 0.5} and version.tags == ["best"]
    assert stored.state == "ready" and stored.created == version.created


@pytest.mark.parametrize("published_by", ["api", "other handle"])
def test_a_published_model_is_refused_before_any_write(registry_backend: str, make_weights: Any,
                                                       published_by: str) -> None:
    from modelyard import PublishedModelError

    task = Task.init(project_name="proj", task_name="run")
    out = OutputModel(task, name="counted")
    out.update_weights(make_weights())
    if published_by == "api":
        out.publish()
    else:
        OutputModel.wait_for_uploads()
        get_registry().update_model(out.id, published=True)
    with caller_statements() as seen, pytest.raises(PublishedModelError, match="published"):
        out.update_weights(make_weights())
    assert not any(s.startswith(("INSERT", "UPDATE", "DELETE")) for s in seen), seen
    assert len(out.versions) == 1
