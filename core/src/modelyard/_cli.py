"""The ``modelyard`` command: find, inspect, fetch, publish and audit models from a terminal or a script.

Typed errors become one escaped line on stderr and a documented exit code (see ``EPILOG``); every string
from the registry is printed through :mod:`modelyard._terminal`, which lets no control sequence or rich
markup through.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, NoReturn

import click
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import _audit, _plugins, _storage, _uploads
from . import _terminal as term
from ._errors import (
    InvalidArgumentError,
    LabelError,
    ModelyardError,
    NotFoundError,
    PublishedModelError,
)
from ._export import export_version
from ._formats import text_to_config
from ._registry import ACTIVE_STATES, SCHEMA_VERSION, Registry, get_registry
from ._settings import ENV_DEFAULT_OUTPUT_URI, default_storage_uri, home, registry_url

EXIT_OK = 0
EXIT_DRIFT = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_ERROR = 4
#: 128 + SIGPIPE, what a shell reports for a writer whose reader went away.
EXIT_BROKEN_PIPE = 141

EPILOG = """\b
Exit codes:
  0  success
  1  problems found: `verify` found drift, or a journaled upload failed in `sync`
  2  usage error (unknown command or option, bad value)
  3  not found: no such model, task or version
  4  any other error (published model, integrity error, storage or registry failure)

\b
Environment: MODELYARD_HOME (default ~/.modelyard), MODELYARD_REGISTRY_URL,
MODELYARD_DEFAULT_OUTPUT_URI. Documentation: docs/cli.md."""

# -- errors -----------------------------------------------------------------------------------------


class CommandFailed(click.ClickException):
    """A modelyard error, shown as one escaped line on stderr; exit code 4."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(term.clean(message))


class NotFound(CommandFailed):
    """No such model, task or version; exit code 3."""

    exit_code = EXIT_NOT_FOUND


def _describe(error: BaseException) -> str:
    if isinstance(error, sa.exc.SQLAlchemyError):
        # The driver's message, without the SQL statement and parameters SQLAlchemy appends.
        orig = getattr(error, "orig", None)
        return f"registry error: {orig if orig is not None else type(error).__name__}"
    if isinstance(error, OSError) and not isinstance(error, ModelyardError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror}{where}"
    return str(error) or type(error).__name__


class _Group(click.Group):
    """A click group that turns modelyard's typed errors into one line and a documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except BrokenPipeError:
            # The reader went away (`modelyard models list | head`): stop quietly, as shell tools do. Click
            # would exit 1 here, which this command reserves for "problems found".
            _silence_stdout()
            raise click.exceptions.Exit(EXIT_BROKEN_PIPE) from None
        except NotFoundError as e:
            raise NotFound(_describe(e)) from e
        except (ModelyardError, ValueError, OSError, sa.exc.SQLAlchemyError) as e:
            raise CommandFailed(_describe(e)) from e
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            raise click.exceptions.Exit(130) from None
        except Exception as e:
            # Not a typed error: a bug. Show where it happened, but keep the documented exit code.
            traceback.print_exc()
            raise CommandFailed(f"unexpected {type(e).__name__}: {e} (this is a bug in modelyard; please "
                                "report it with the traceback above)") from e


# -- registry helpers -------------------------------------------------------------------------------


def _registry() -> Registry:
    return get_registry()


def _model_summary(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "project": row["project"],
        "task_id": row["task_id"],
        "framework": row["framework"],
        "tags": row["tags"],
        "system_tags": row["system_tags"],
        "published": bool(row["published"]),
        "archived": bool(row["archived"]),
        "version_count": row["version_count"],
        "created": term.iso(row["created"]),
        "updated": term.iso(row["updated"]),
    }


def _version_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "version": row["version"],
        "iteration": row["iteration"],
        "state": row["state"],
        "size": row["size"],
        "sha256": row["sha256"],
        "uri": row["uri"],
        "file_name": row["file_name"],
        "package_format": row["package_format"],
        "tags": row["tags"],
        "metadata": row["meta"],
        "pinned": bool(row["pinned"]),
        "error": row["error"],
        "created": term.iso(row["created"]),
    }


def _status(row: Mapping[str, Any]) -> str:
    status = "published" if row["published"] else "draft"
    return f"{status}, archived" if row["archived"] else status


def _pick_version(registry: Registry, model_id: str, version: int | None) -> dict[str, Any]:
    if version is None:
        row = registry.latest_ready_version(model_id)
        if row is None:
            raise NotFoundError(f"model {model_id} has no ready weights version yet")
        return row
    for row in registry.model_versions(model_id):
        if row["version"] == version:
            if row["state"] != "ready":
                raise NotFoundError(f"model {model_id} version {version} is {row['state']}, not ready"
                                    + (f": {row['error']}" if row["error"] else ""))
            return row
    raise NotFoundError(f"model {model_id} has no version {version}")


def _active_versions(registry: Registry, model_id: str) -> list[dict[str, Any]]:
    return [r for r in registry.model_versions(model_id) if r["state"] in ACTIVE_STATES]


# -- the command ------------------------------------------------------------------------------------


@click.group(cls=_Group, epilog=EPILOG,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(None, "--version", package_name="modelyard", prog_name="modelyard",
                      message="%(prog)s %(version)s")
def cli() -> None:
    """Find, inspect, fetch, publish and audit the models in a modelyard registry.

    The registry is the one your training code uses: MODELYARD_REGISTRY_URL, or the SQLite file under
    MODELYARD_HOME. Every listing and show command takes --json for scripts.
    """


# -- models -----------------------------------------------------------------------------------------


@cli.group(cls=_Group, epilog=EPILOG)
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
    from ._task import check_tags

    rows = _registry().query_models(project=project, name=name, tags=check_tags(list(tags), "--tag"),
                                    only_published=published, include_archived=archived, max_results=limit)
    if as_json:
        term.print_json([_model_summary(r) for r in rows])
        return
    table = term.table("ID", "PROJECT", "NAME", "TAGS", "STATUS", "VERSIONS", "UPDATED",
                       fold=("PROJECT", "NAME", "TAGS"))
    for r in rows:
        table.add_row(term.text(r["id"]), term.text(r["project"], 60), term.text(r["name"], 120),
                      term.text(", ".join(term.strings(r["tags"])), 120), term.text(_status(r)),
                      term.text(r["version_count"]), term.text(term.short_time(r["updated"])))
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
    registry = _registry()
    row = registry.get_model(model_id)
    versions = registry.model_versions(model_id)
    ready = [v for v in versions if v["state"] == "ready"]
    config = None
    if row["config_text"] is not None:
        try:
            config = text_to_config(row["config_text"])
        except (ModelyardError, ValueError):
            config = None  # kept verbatim in config_text
    if as_json:
        term.print_json({**_model_summary(row), "comment": row["comment"],
                         "base_model_id": row["base_model_id"], "upload_uri": row["upload_uri"],
                         "url": ready[-1]["uri"] if ready else None, "config_text": row["config_text"],
                         "config": config, "labels": row["labels"],
                         "versions": [_version_json(v) for v in versions]})
        return
    console = term.console()
    task_text = row["task_id"]
    if row["task_id"]:
        try:
            task = registry.get_task(row["task_id"])
            task_text = f"{row['task_id']} ({task['project']} / {task['name']})"
        except NotFoundError:
            task_text = f"{row['task_id']} (removed)"
    term.key_values(console, (
        ("id", row["id"]), ("name", row["name"]), ("project", row["project"]), ("task", task_text),
        ("framework", row["framework"]), ("status", _status(row)),
        ("tags", ", ".join(term.strings(row["tags"])) or None),
        ("system tags", ", ".join(term.strings(row["system_tags"])) or None),
        ("url", ready[-1]["uri"] if ready else None), ("upload uri", row["upload_uri"]),
        ("base model", row["base_model_id"]), ("created", term.iso(row["created"])),
        ("updated", term.iso(row["updated"]))))
    if row["comment"]:
        console.print(Text("\ncomment", style="bold"))
        console.print(term.block(str(row["comment"])))
    labels = row["labels"]
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
    console.print(term.block(str(row["config_text"])) if row["config_text"] is not None else Text("  -"))
    console.print(Text(f"\nversions ({len(versions)})", style="bold"))
    for v in versions:
        head = Text("  ")
        head.append(f"v{term.clean(v['version'])}", style="bold")
        head.append(f"  {term.clean(v['state'])}", style="green" if v["state"] == "ready" else "yellow")
        head.append(f"  iteration {term.clean(v['iteration']) if v['iteration'] is not None else '-'}")
        head.append(f"  {term.human(v['size'])}")
        if v["package_format"]:
            head.append(f"  package ({term.clean(v['package_format'])})")
        if v["pinned"]:
            head.append("  pinned")
        console.print(head)
        details: list[tuple[str, object]] = [
            ("sha256", v["sha256"]), ("size", f"{v['size']} bytes" if v["size"] is not None else None),
            ("uri", v["uri"]), ("tags", ", ".join(term.strings(v["tags"])) or None),
            ("created", term.iso(v["created"]))]
        if v["meta"]:
            details.append(("metadata", json.dumps(v["meta"], ensure_ascii=False, default=str)))
        if v["error"]:
            details.append(("error", v["error"]))
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
    registry = _registry()
    registry.get_model(model_id)
    row = _pick_version(registry, model_id, version)
    version_id = row["id"]

    def record(size: int, sha256: str) -> None:
        registry.record_first_hash(version_id, size, sha256)

    with term.progress_bars() as bars:
        path = export_version(row, registry.destinations(), out_dir, bars, on_first_hash=record)
    term.note(f"model {model_id} version {row['version']}: verified")
    click.echo(term.clean(str(path)))


@models.command("publish")
@click.argument("model_id")
def models_publish(model_id: str) -> None:
    """Publish a model: it becomes immutable (no new versions, config, labels or tags)."""
    from ._model import Model

    registry = _registry()
    row = registry.get_model(model_id)
    if row["published"]:
        term.note(f"model {model_id} is already published")
        return
    active = _active_versions(registry, model_id)
    if active:
        raise InvalidArgumentError(
            f"model {model_id} has {len(active)} upload(s) in progress (version {active[0]['version']} is "
            f"{active[0]['state']}); wait for them, or run `modelyard sync` on the machine that started them")
    # The hooks' documented argument is the model; from the command line that is a read-only Model.
    plugins = _plugins.get_plugin_manager()
    plugins.before_publish(Model(model_id))  # a plugin vetoes by raising
    registry.update_model(model_id, published=True)
    plugins.after_publish(Model(model_id))
    term.note(f"published model {model_id}")


@models.command("tag")
@click.argument("model_id")
@click.option("--add", "-a", "add", multiple=True, help="A tag to add; repeat for several.")
@click.option("--remove", "-r", "remove", multiple=True, help="A tag to remove; repeat for several.")
def models_tag(model_id: str, add: Sequence[str], remove: Sequence[str]) -> None:
    """Add and remove a model's tags, then print them."""
    from ._task import check_tags

    add_list = check_tags(list(add), "--add")
    drop = set(check_tags(list(remove), "--remove"))
    if not add_list and not drop:
        raise click.UsageError("give at least one --add TAG or --remove TAG")
    registry = _registry()
    row = registry.get_model(model_id)
    current = term.strings(row["tags"])
    new = [t for t in current if t not in drop] + [t for t in add_list if t not in current and t not in drop]
    if new != current:
        registry.update_model(model_id, require_unpublished=True, tags=new)
    term.console().print(term.text(", ".join(new) if new else "(no tags)"))


@models.command("archive")
@click.argument("model_id")
@click.option("--undo", is_flag=True, help="Unarchive instead.")
def models_archive(model_id: str, undo: bool) -> None:
    """Archive a model (hidden from `models list` unless --archived), or unarchive it with --undo."""
    from ._model import Model

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
    from ._model import Model

    registry = _registry()
    row = registry.get_model(model_id)
    if row["published"] and not force:
        raise PublishedModelError(f"model {model_id} is published; pass --force to remove it")
    active = _active_versions(registry, model_id)
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
    from ._model import InputModel

    label_map: dict[str, int] = {}
    for item in labels:
        label, ident = _parse_label(item)
        if label in label_map:
            raise LabelError(f"--label {label!r} is given twice")
        label_map[label] = ident
    config_text = None
    if config_file is not None:
        from ._formats import validate_config_text

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


# -- tasks ------------------------------------------------------------------------------------------


@cli.group(cls=_Group, epilog=EPILOG)
def tasks() -> None:
    """List and show tasks (training runs)."""


def _task_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "project": row["project"], "name": row["name"], "status": row["status"],
            "output_uri": row["output_uri"], "tags": row["tags"], "created": term.iso(row["created"]),
            "updated": term.iso(row["updated"])}


@tasks.command("list")
@click.option("--project", "-p", help="Only tasks of this project (exact).")
@click.option("--limit", "-l", type=click.IntRange(min=0), help="At most this many (newest first).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of tasks).")
def tasks_list(project: str | None, limit: int | None, as_json: bool) -> None:
    """List tasks, newest first."""
    rows = _registry().find_tasks(project=project, limit=limit)
    if as_json:
        term.print_json([_task_json(r) for r in rows])
        return
    if not rows:
        term.note("no tasks match")
        return
    table = term.table("ID", "PROJECT", "NAME", "STATUS", "CREATED", fold=("PROJECT", "NAME"))
    for r in rows:
        table.add_row(term.text(r["id"]), term.text(r["project"], 60), term.text(r["name"], 120),
                      term.text(r["status"]), term.text(term.short_time(r["created"])))
    term.console().print(table)


@tasks.command("show")
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the task with its models).")
def tasks_show(task_id: str, as_json: bool) -> None:
    """Show a task and the models it used (input) and produced (output)."""
    registry = _registry()
    row = registry.get_task(task_id)
    links = []
    for link in registry.task_model_links(task_id):
        try:
            model = registry.get_model(link["model_id"])
        except NotFoundError:
            model = None
        links.append({"role": link["role"], "model_id": link["model_id"], "link_name": link["name"],
                      "model_name": model["name"] if model else None, "exists": model is not None})
    if as_json:
        term.print_json({**_task_json(row), "models": links})
        return
    console = term.console()
    term.key_values(console, (
        ("id", row["id"]), ("project", row["project"]), ("name", row["name"]), ("status", row["status"]),
        ("output uri", row["output_uri"]), ("tags", ", ".join(term.strings(row["tags"])) or None),
        ("created", term.iso(row["created"])), ("updated", term.iso(row["updated"]))))
    console.print(Text(f"\nmodels ({len(links)})", style="bold"))
    if links:
        table = term.table("ROLE", "ID", "NAME", fold=("NAME",))
        for link in links:
            table.add_row(term.text(link["role"]), term.text(link["model_id"]),
                          term.text(link["model_name"], 120) if link["exists"] else term.text("(removed)"))
        console.print(table)


# -- maintenance ------------------------------------------------------------------------------------


@cli.command("sync", short_help="Finish or fail journaled uploads of dead processes.")
@click.option("--timeout", type=click.FloatRange(min=0), help="Seconds to wait for resumed uploads.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON counts.")
def sync_command(timeout: float | None, as_json: bool) -> None:
    """Finish or fail the journaled uploads of processes on this machine that died.

    Exits 1 when a resumed upload failed (the version is then `failed`, with its cause).
    """
    counts = _uploads.sync(timeout=timeout)
    finished = counts["resumed"] - counts["failed"] - counts["pending"]
    if as_json:
        term.print_json({**counts, "finished": finished})
    else:
        click.echo(f"took over {counts['resumed']} journaled upload(s): {finished} finished, "
                   f"{counts['failed']} failed, {counts['pending']} still running")
    if counts["failed"]:
        raise click.exceptions.Exit(EXIT_DRIFT)


@cli.command("verify", short_help="Re-hash stored weights; report drift and orphans.")
@click.argument("model_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (problems and orphans).")
def verify_command(model_id: str | None, as_json: bool) -> None:
    """Re-hash stored weights against the registry and look for orphan objects.

    Reports missing and corrupt objects of ready versions, rows pointing outside the registry's
    destinations, and objects under the destinations that no version references. With MODEL_ID, only that
    model. Exits 1 when anything drifted.
    """
    registry = _registry()
    total = _audit.total_recorded_bytes(registry, model_id)
    with term.progress_bars() as bar:
        report = _audit.audit(registry, model_id=model_id, progress=bar("verifying", total or None))
    if as_json:
        term.print_json({
            "ok": not report.drift, "versions": report.versions, "objects": report.objects,
            "bytes": report.bytes,
            "unverifiable": [{"model_id": m, "version": v} for m, v in report.unverifiable],
            "problems": [{"kind": p.kind, "model_id": p.model_id, "version": p.version, "uri": p.uri,
                          "detail": p.detail} for p in report.problems],
            "orphans": [{"uri": o.uri, "size": o.size} for o in report.orphans],
        })
    else:
        console = term.console()
        for p in report.problems:
            # One line per problem, never wrapped, so it can be grepped and its URI copied whole.
            line = term.text(f"{p.kind:<10}", style="red")
            line.append(term.clean(f" model {p.model_id} version {p.version}: {p.detail}: {p.uri}"))
            console.print(line, soft_wrap=True)
        if report.orphans:
            _print_orphans(console, report.orphans)
        summary = (f"checked {report.versions} ready version(s), {report.objects} object(s), "
                   f"{term.human(report.bytes)}: {len(report.problems)} problem(s), "
                   f"{len(report.orphans)} orphan(s)")
        if report.unverifiable:
            summary += f", {len(report.unverifiable)} without a recorded sha256 (size checked only)"
        console.print(term.text(summary), soft_wrap=True)
        if report.orphans:
            term.note("run `modelyard gc` to see what removing the orphans would do")
    if report.drift:
        raise click.exceptions.Exit(EXIT_DRIFT)


def _print_orphans(console: Console, orphans: Iterable[_audit.Orphan]) -> None:
    for o in orphans:
        line = term.text(f"{'orphan':<10}", style="yellow")
        line.append(term.clean(f" {term.human(o.size):>10}  {o.uri}"))
        console.print(line, soft_wrap=True)


@cli.command("gc", short_help="Remove orphan objects (a dry run unless --yes).")
@click.option("--yes", "-y", is_flag=True, help="Remove the orphans (without it, only list them).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the orphans; whether they were removed).")
def gc_command(yes: bool, as_json: bool) -> None:
    """Remove stored objects that no version references (a dry run unless --yes).

    Only objects in modelyard's own layout under the registry's destinations are considered, so other
    files in the same bucket or folder are never touched. Do not point two registries at one destination
    folder if you run gc.
    """
    registry = _registry()
    orphans = _audit.find_orphans(registry)
    total = sum(o.size or 0 for o in orphans)
    removed = _audit.remove_orphans(registry, orphans) if yes else (0, 0)
    if as_json:
        term.print_json({"removed": yes, "count": len(orphans), "bytes": total,
                     "orphans": [{"uri": o.uri, "size": o.size} for o in orphans]})
        return
    console = term.console()
    if orphans:
        _print_orphans(console, orphans)
    if yes:
        click.echo(f"removed {removed[0]} orphan object(s), {term.human(removed[1])}")
    elif orphans:
        click.echo(f"{len(orphans)} orphan object(s), {term.human(total)}, would be removed; "
                   "run `modelyard gc --yes` to remove them")
    else:
        click.echo("no orphan objects")


def _safe_url(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<not a valid SQLAlchemy URL>"


@cli.command("info", short_help="Show registry, home, destination, integrations.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info_command(as_json: bool) -> None:
    """Show the registry, home, default destination, installed integrations and versions.

    Exits 4 (after printing everything else) when the registry cannot be opened.
    """
    from . import __version__

    url = registry_url()
    data: dict[str, Any] = {
        "modelyard": __version__,
        "python": sys.version.split()[0],
        "home": str(home()),
        "registry": _safe_url(url),
        "schema_version": None,
        "default_destination": _storage.normalize_destination(
            os.environ.get(ENV_DEFAULT_OUTPUT_URI) or default_storage_uri()),
        "destinations": [],
        "integrations": [],
        "errors": [],
    }
    try:
        registry = get_registry()
        data["schema_version"] = _schema_version(registry)
        data["destinations"] = sorted(registry.destinations())
    except (ModelyardError, sa.exc.SQLAlchemyError, OSError) as e:
        data["errors"].append(f"registry: {_describe(e)}")
    try:
        for name, integration in sorted(_plugins.get_plugin_manager().integrations().items()):
            version = None
            if integration.package:
                try:
                    version = importlib_metadata.version(integration.package)
                except importlib_metadata.PackageNotFoundError:
                    version = None
            data["integrations"].append({"name": name, "package": integration.package, "version": version,
                                         "plugin": integration.plugin})
    except Exception as e:  # noqa: BLE001 - a broken third-party plugin is reported, not fatal, here
        data["errors"].append(f"plugins: {type(e).__name__}: {e}")
    if as_json:
        term.print_json(data)
    else:
        console = term.console()
        rows: list[tuple[str, object]] = [
            (key.replace("_", " "), data[key])
            for key in ("modelyard", "python", "home", "registry", "schema_version", "default_destination")]
        integrations = [f"{i['name']}  {i['package'] or i['plugin']} {i['version'] or ''}".rstrip()
                        for i in data["integrations"]]
        for key, values, empty in (("destinations", data["destinations"], "-"),
                                   ("integrations", integrations, "none installed")):
            rows += [(key if i == 0 else "", value) for i, value in enumerate(values or [empty])]
        term.key_values(console, rows)
    if data["errors"]:
        for error in data["errors"]:
            term.note(f"Error: {error}")
        raise click.exceptions.Exit(EXIT_ERROR)


def _schema_version(registry: Registry) -> int:
    from ._registry import meta

    with registry.read() as conn:
        value = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar_one()
    return int(value)


@cli.group(cls=_Group, epilog=EPILOG)
def db() -> None:
    """Manage the registry database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Bring the registry's schema to this modelyard's version (run it once after upgrading modelyard)."""
    registry = _registry()
    version = registry.migrate()
    click.echo(f"registry {term.clean(registry.safe_url)} is at schema version {version}"
               + ("" if version == SCHEMA_VERSION else f" (this modelyard expects {SCHEMA_VERSION})"))


# -- entry point ------------------------------------------------------------------------------------


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail on the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # not a real file descriptor (a test runner's buffer): nothing will flush to a dead pipe


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the ``modelyard`` command (the console script's entry point)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="modelyard")
    sys.exit(EXIT_OK)  # pragma: no cover - cli.main exits itself in standalone mode
