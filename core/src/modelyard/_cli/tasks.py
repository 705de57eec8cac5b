"""``modelyard tasks``: list and show tasks (training runs) and the models they used and produced."""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from modelyard import _terminal as term
from modelyard._errors import NotFoundError
from modelyard._rows import TaskRow

from .common import EPILOG, Group, open_registry


@click.group(cls=Group, epilog=EPILOG)
def tasks() -> None:
    """List and show tasks (training runs)."""


def _task_json(row: TaskRow) -> dict[str, Any]:
    return {"id": row.id, "project": row.project, "name": row.name, "status": row.status,
            "output_uri": row.output_uri, "tags": row.tags, "created": term.iso(row.created),
            "updated": term.iso(row.updated)}


@tasks.command("list")
@click.option("--project", "-p", help="Only tasks of this project (exact).")
@click.option("--limit", "-l", type=click.IntRange(min=0), help="At most this many (newest first).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of tasks).")
def tasks_list(project: str | None, limit: int | None, as_json: bool) -> None:
    """List tasks, newest first."""
    rows = open_registry().find_tasks(project=project, limit=limit)
    if as_json:
        term.print_json([_task_json(r) for r in rows])
        return
    if not rows:
        term.note("no tasks match")
        return
    table = term.table("ID", "PROJECT", "NAME", "STATUS", "CREATED", fold=("PROJECT", "NAME"))
    for r in rows:
        table.add_row(term.text(r.id), term.text(r.project, 60), term.text(r.name, 120),
                      term.text(r.status), term.text(term.short_time(r.created)))
    term.console().print(table)


@tasks.command("show")
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the task with its models).")
def tasks_show(task_id: str, as_json: bool) -> None:
    """Show a task and the models it used (input) and produced (output)."""
    registry = open_registry()
    row = registry.get_task(task_id)
    links = []
    for link in registry.task_model_links(task_id):
        try:
            model = registry.get_model(link.model_id)
        except NotFoundError:
            model = None
        links.append({"role": link.role, "model_id": link.model_id, "link_name": link.name,
                      "model_name": model.name if model else None, "exists": model is not None})
    if as_json:
        term.print_json({**_task_json(row), "models": links})
        return
    console = term.console()
    term.key_values(console, (
        ("id", row.id), ("project", row.project), ("name", row.name), ("status", row.status),
        ("output uri", row.output_uri), ("tags", ", ".join(term.strings(row.tags)) or None),
        ("created", term.iso(row.created)), ("updated", term.iso(row.updated))))
    console.print(Text(f"\nmodels ({len(links)})", style="bold"))
    if links:
        table = term.table("ROLE", "ID", "NAME", fold=("NAME",))
        for link in links:
            table.add_row(term.text(link["role"]), term.text(link["model_id"]),
                          term.text(link["model_name"], 120) if link["exists"] else term.text("(removed)"))
        console.print(table)
