"""``modelyard db``: manage the registry database's schema (Alembic revisions, see docs/team.md)."""

from __future__ import annotations

import click

from modelyard import _terminal as term

from .common import EPILOG, Group


@click.group(cls=Group, epilog=EPILOG)
def db() -> None:
    """Manage the registry database."""


@db.command("upgrade")
@click.option("--sql", is_flag=True,
              help="Print the SQL that creates the schema, for a DBA to run, instead of applying it. Nothing is "
                   "connected to; the SQL is in the dialect of MODELYARD_REGISTRY_URL.")
def db_upgrade(sql: bool) -> None:
    """Bring the registry's schema to this modelyard's revision (run it once after upgrading modelyard)."""
    # Imported here: the migrations module pulls in SQLAlchemy, which `modelyard --help` must not pay for.
    from modelyard import _engine, _migrations
    from modelyard._settings import registry_url

    if sql:
        click.echo(_migrations.upgrade_sql(), nl=False)
        return
    url = registry_url()
    revision = _migrations.upgrade(url)
    click.echo(f"registry {term.clean(_engine.safe_url(url))} is at revision {revision}")


@db.command("current")
def db_current() -> None:
    """Show the revision the registry is at, changing nothing."""
    from modelyard import _engine, _migrations
    from modelyard._settings import registry_url

    url = registry_url()
    revision = _migrations.current(url)
    where = term.clean(_engine.safe_url(url))
    if revision is None:
        click.echo(f"registry {where} is not stamped (empty, or not opened since modelyard 0.1); "
                   "`modelyard db upgrade` stamps it")
    elif revision == _migrations.HEAD:
        click.echo(f"registry {where} is at revision {revision} (this modelyard's head)")
    else:
        click.echo(f"registry {where} is at revision {revision}; this modelyard's head is {_migrations.HEAD}: "
                   "run `modelyard db upgrade`")
