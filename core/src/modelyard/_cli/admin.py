"""Maintenance commands: ``sync``, ``verify``, ``gc`` and ``info``."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from importlib import metadata as importlib_metadata
from typing import Any

import click
import sqlalchemy as sa
from rich.console import Console

from modelyard import _audit, _plugins, _storage, _uploads
from modelyard import _terminal as term
from modelyard._errors import ModelyardError
from modelyard._registry import Registry
from modelyard._settings import ENV_DEFAULT_OUTPUT_URI, default_storage_uri, home, registry_url

from .common import EXIT_DRIFT, EXIT_ERROR, describe, open_registry


@click.command("sync", short_help="Finish or fail journaled uploads of dead processes.")
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


@click.command("verify", short_help="Re-hash stored weights; report drift and orphans.")
@click.argument("model_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (problems and orphans).")
def verify_command(model_id: str | None, as_json: bool) -> None:
    """Re-hash stored weights against the registry and look for orphan objects.

    Reports missing and corrupt objects of ready versions, rows pointing outside the registry's
    destinations, and objects under the destinations that no version references. With MODEL_ID, only that
    model. Exits 1 when anything drifted.
    """
    registry = open_registry()
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


@click.command("gc", short_help="Remove orphan objects (a dry run unless --yes).")
@click.option("--yes", "-y", is_flag=True, help="Remove the orphans (without it, only list them).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the orphans; whether they were removed).")
def gc_command(yes: bool, as_json: bool) -> None:
    """Remove stored objects that no version references (a dry run unless --yes).

    Only objects in modelyard's own layout under the registry's destinations are considered, so other
    files in the same bucket or folder are never touched. Do not point two registries at one destination
    folder if you run gc.
    """
    registry = open_registry()
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


@click.command("info", short_help="Show registry, home, destination, integrations.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info_command(as_json: bool) -> None:
    """Show the registry, home, default destination, installed integrations and versions.

    Exits 4 (after printing everything else) when the registry cannot be opened.
    """
    from modelyard import __version__

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
        registry = open_registry()
        data["schema_version"] = _schema_version(registry)
        data["destinations"] = sorted(registry.destinations())
    except (ModelyardError, sa.exc.SQLAlchemyError, OSError) as e:
        data["errors"].append(f"registry: {describe(e)}")
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
    from modelyard._registry import meta

    with registry.read() as conn:
        value = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar_one()
    return int(value)
