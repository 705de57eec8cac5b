"""``modelyard db``: manage the registry database's schema."""

from __future__ import annotations

import click

from modelyard import _terminal as term
from modelyard._registry import SCHEMA_VERSION

from .common import EPILOG, Group, open_registry


@click.group(cls=Group, epilog=EPILOG)
def db() -> None:
    """Manage the registry database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Bring the registry's schema to this modelyard's version (run it once after upgrading modelyard)."""
    registry = open_registry()
    version = registry.migrate()
    click.echo(f"registry {term.clean(registry.safe_url)} is at schema version {version}"
               + ("" if version == SCHEMA_VERSION else f" (this modelyard expects {SCHEMA_VERSION})"))
