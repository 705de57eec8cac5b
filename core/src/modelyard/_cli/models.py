"""``modelyard models``: list, show, download, publish, tag, archive, remove and import models."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table
from rich.text import Text

from modelyard import _storage
from modelyard import _terminal as term
from modelyard._config import text_to_config
from modelyard._errors import InvalidArgumentError, LabelError, ModelyardError, NotFoundError, PublishedModelError
from modelyard._registry import ACTIVE_STATES

from .common import EPILOG, Group, open_registry

if TYPE_CHECKING:
    from modelyard._model import Model
    from modelyard._rows import ModelRow
    from modelyard._versions import ModelVersion


def _model_summary(row: ModelRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "project": row.project,
        "task_id": row.task_id,
        "framework": row.framework,
        "tags": row.tags,
        "system_tags": row.system_tags,
        "published": bool(row.published),
        "archived": bool(row.archived),
        "version_count": row.version_count,
        "created": term.iso(row.created),
        "updated": term.iso(row.updated),
    }


def _status(row: ModelRow) -> str:
    status = "published" if row.published else "draft"
    return f"{status}, archived" if row.archived else status


def _active_versions(model: Model) -> list[ModelVersion]:
    return [v for v in model.versions if v.state in ACTIVE_STATES]


@click.group(cls=Group, epilog=EPILOG)
def models() -> None:
    """List, show, download, publish, tag, archive, remove and import models."""


@models.command("list", short_help="List models, newest first.")
@click.option("--project", "-p", help="Only models of this project (exact).")
@click.option("--name", "-n", help="Only models with this name (exact).")
@click.option("--tag", "-t", "tags", multiple=True,
              help="Only models with this tag; repeat for several; --tag=-T excludes tag T.")
@click.option("--published", is_flag=True, help="Only published models.")
@click.option("--archived", is_flag=True, help="Include archived models (hidden by default).")
@click.option("--limit", "-l", type=click.IntRange(min=0), help="At most this many (newest first).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of models).")
def models_list(project: str | None, name: str | None, tags: Sequence[str], published: bool, archived: bool,
                limit: int | None, as_json: bool) -> None:
    """List models, newest first."""
    from modelyard._task import check_tags

    rows = open_registry().query_models(project=project, name=name, tags=check_tags(list(tags), "--tag"),
                                    only_published=published, include_archived=archived, max_results=limit)
    if as_json:
        term.print_json([_model_summary(r) for r in rows])
        return
    table = term.table("ID", "PROJECT", "NAME", "TAGS", "STATUS", "VERSIONS", "UPDATED",
                       fold=("PROJECT", "NAME", "TAGS"))
    for r in rows:
        table.add_row(term.text(r.id), term.text(r.project, 60), term.text(r.name, 120),
                      term.text(", ".join(term.strings(r.tags)), 120), term.text(_status(r)),
                      term.text(r.version_count), term.text(term.short_time(r.updated)))
    console = term.console()
    if rows:
        console.print(table)
    else:
        term.note("no models match")


@models.command("show")
@click.argument("model_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the model with its versions).")
def models_show(model_id: str, as_json: bool) -> None:
    """Show a model: metadata, config, labels, tags and every weights version."""
    from modelyard._model import Model

    registry = open_registry()
    row = registry.get_model(model_id)
    versions = Model(model_id).versions
    ready = [v for v in versions if v.state == "ready"]
    config = None
    if row.config_text is not None:
        try:
            config = text_to_config(row.config_text)
        except (ModelyardError, ValueError):
            config = None  # kept verbatim in config_text
    if as_json:
        term.print_json({**_model_summary(row), "comment": row.comment,
                         "base_model_id": row.base_model_id, "upload_uri": row.upload_uri,
                         "url": ready[-1].uri if ready else None, "config_text": row.config_text,
                         "config": config, "labels": row.labels,
                         "versions": [v.to_dict() for v in versions]})
        return
    console = term.console()
    task_text = row.task_id
    if row.task_id:
        try:
            task = registry.get_task(row.task_id)
            task_text = f"{row.task_id} ({task.project} / {task.name})"
        except NotFoundError:
            task_text = f"{row.task_id} (removed)"
    term.key_values(console, (
        ("id", row.id), ("name", row.name), ("project", row.project), ("task", task_text),
        ("framework", row.framework), ("status", _status(row)),
        ("tags", ", ".join(term.strings(row.tags)) or None),
        ("system tags", ", ".join(term.strings(row.system_tags)) or None),
        ("url", ready[-1].uri if ready else None), ("upload uri", row.upload_uri),
        ("base model", row.base_model_id), ("created", term.iso(row.created)),
        ("updated", term.iso(row.updated))))
    if row.comment:
        console.print(Text("\ncomment", style="bold"))
        console.print(term.block(str(row.comment)))
    labels = row.labels
    console.print(Text("\nlabels", style="bold"))
    if isinstance(labels, dict) and labels:
        label_grid = Table.grid(padding=(0, 2))
        label_grid.add_column(overflow="fold")
        label_grid.add_column(justify="right")
        for label, ident in labels.items():
            label_grid.add_row(term.text("  " + term.clean(label)), term.text(ident))
        console.print(label_grid)
    else:
        console.print(term.text("  " + term.clean(labels) if labels else "  -"))
    console.print(Text("\nconfig", style="bold"))
    console.print(term.block(str(row.config_text)) if row.config_text is not None else Text("  -"))
    console.print(Text(f"\nversions ({len(versions)})", style="bold"))
    for v in versions:
        head = Text("  ")
        head.append(f"v{term.clean(v.version)}", style="bold")
        head.append(f"  {term.clean(v.state)}", style="green" if v.state == "ready" else "yellow")
        head.append(f"  iteration {term.clean(v.iteration) if v.iteration is not None else '-'}")
        head.append(f"  {term.human(v.size)}")
        if v.package_format:
            head.append(f"  package ({term.clean(v.package_format)})")
        if v.pinned:
            head.append("  pinned")
        console.print(head)
        details: list[tuple[str, object]] = [
            ("sha256", v.sha256), ("size", f"{v.size} bytes" if v.size is not None else None),
            ("uri", v.uri), ("tags", ", ".join(term.strings(v.tags)) or None),
            ("created", term.iso(v.created))]
        if v.metadata:
            details.append(("metadata", json.dumps(v.metadata, ensure_ascii=False, default=str)))
        if v.error:
            details.append(("error", v.error))
        term.key_values(console, details, indent="    ")


@models.command("get")
@click.argument("model_id")
@click.option("--output", "-o", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), show_default=True, metavar="DIR",
              help="Folder to download into (created if missing).")
@click.option("--version", "-v", "version", type=click.IntRange(min=1),
              help="A specific version (default: the newest ready one).")
def models_get(model_id: str, out_dir: Path, version: int | None) -> None:
    """Download a model's weights, verify size and sha256, and print the local path.

    A single file lands as DIR/<file name>; a package (a folder of files, or a zip package, which is
    extracted safely) lands as the folder DIR/<package name>. Nothing is left behind if verification fails.
    """
    from modelyard._model import Model

    model = Model(model_id)
    number = model.get_version(version).version if version is None else version  # the newest ready one
    with term.progress_bars() as bars:
        path = model.export_weights(out_dir, version=number, progress=bars)
    term.note(f"model {model_id} version {number}: verified")
    click.echo(term.clean(str(path)))


@models.command("publish")
@click.argument("model_id")
def models_publish(model_id: str) -> None:
    """Publish a model: it becomes immutable (no new versions, config, labels or tags)."""
    from modelyard._model import Model

    model = Model(model_id)
    if model.published:
        term.note(f"model {model_id} is already published")
        return
    model.publish()  # refuses while uploads are in progress; the hooks get this read-only Model
    term.note(f"published model {model_id}")


@models.command("tag")
@click.argument("model_id")
@click.option("--add", "-a", "add", multiple=True, help="A tag to add; repeat for several.")
@click.option("--remove", "-r", "remove", multiple=True, help="A tag to remove; repeat for several.")
def models_tag(model_id: str, add: Sequence[str], remove: Sequence[str]) -> None:
    """Add and remove a model's tags, then print them."""
    from modelyard._task import check_tags

    add_list = check_tags(list(add), "--add")
    drop = set(check_tags(list(remove), "--remove"))
    if not add_list and not drop:
        raise click.UsageError("give at least one --add TAG or --remove TAG")
    registry = open_registry()
    row = registry.get_model(model_id)
    current = term.strings(row.tags)
    new = [t for t in current if t not in drop] + [t for t in add_list if t not in current and t not in drop]
    if new != current:
        registry.update_model(model_id, require_unpublished=True, tags=new)
    term.console().print(term.text(", ".join(new) if new else "(no tags)"))


@models.command("archive")
@click.argument("model_id")
@click.option("--undo", is_flag=True, help="Unarchive instead.")
def models_archive(model_id: str, undo: bool) -> None:
    """Archive a model (hidden from `models list` unless --archived), or unarchive it with --undo."""
    from modelyard._model import Model

    model = Model(model_id)
    if undo:
        model.unarchive()
        term.note(f"unarchived model {model_id}")
    else:
        model.archive()
        term.note(f"archived model {model_id}")


@models.command("rm")
@click.argument("model_id")
@click.option("--force", is_flag=True,
              help="Remove even a published model, or one with uploads in progress.")
@click.option("--keep-files", is_flag=True, help="Keep the stored weights (only the registry entry goes).")
def models_rm(model_id: str, force: bool, keep_files: bool) -> None:
    """Remove a model, its versions and (unless --keep-files) its stored weights."""
    from modelyard._model import Model

    model = Model(model_id)
    if model.published and not force:
        raise PublishedModelError(f"model {model_id} is published; pass --force to remove it")
    active = _active_versions(model)
    if active and not force:
        raise InvalidArgumentError(
            f"model {model_id} has {len(active)} upload(s) in progress; run `modelyard sync` on the machine "
            "that started them, or pass --force")
    Model.remove(model_id, delete_weights_file=not keep_files, force=True, raise_on_errors=True)
    term.note(f"removed model {model_id}" + (" (stored weights kept)" if keep_files else ""))


def _parse_label(value: str) -> tuple[str, int]:
    name, sep, ident = value.rpartition("=")
    if not sep or not name:
        raise click.BadParameter(f"{value!r} is not NAME=ID", param_hint="--label")
    try:
        return name, int(ident)
    except ValueError:
        raise click.BadParameter(f"{value!r}: the id {ident!r} is not an integer",
                                 param_hint="--label") from None


@models.command("import")
@click.argument("url")
@click.option("--name", "-n", required=True, help="The model name.")
@click.option("--project", "-p", default="default", show_default=True, help="The project.")
@click.option("--label", "labels", multiple=True, metavar="NAME=ID",
              help="A label and its integer id; repeat for each label.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A configuration file (JSON, YAML or any text), stored verbatim.")
@click.option("--tag", "-t", "tags", multiple=True, help="A tag; repeat for several.")
@click.option("--published", is_flag=True, help="Create the model published (immutable).")
def models_import(url: str, name: str, project: str, labels: Sequence[str], config_file: Path | None,
                  tags: Sequence[str], published: bool) -> None:
    """Register weights that already live at URL (a path, file://, s3://, gs://, azure://) as a new model.

    Nothing is copied: the URL becomes an allowed read location of the registry. Prints the new model id.
    """
    from modelyard._model import InputModel

    label_map: dict[str, int] = {}
    for item in labels:
        label, ident = _parse_label(item)
        if label in label_map:
            raise LabelError(f"--label {label!r} is given twice")
        label_map[label] = ident
    config_text = None
    if config_file is not None:
        from modelyard._config import validate_config_text

        config_text = validate_config_text(config_file.read_bytes())
    protocol, path = _storage.split_uri(url)
    if _storage.is_local(protocol) and not os.path.exists(path):
        raise InvalidArgumentError(f"nothing exists at {url!r}; give the path or URL of the weights to "
                                   "import")
    model = InputModel.import_model(url, config_text=config_text, label_enumeration=label_map or None,
                                    name=name, project=project, tags=list(tags),
                                    create_as_published=published)
    term.note(f"imported {url} as model {model.id}")
    click.echo(model.id)
