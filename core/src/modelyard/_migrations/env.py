"""The Alembic environment of modelyard's registry (loaded by Alembic from this folder, never imported).

`modelyard._migrations` builds the configuration in code (no ``alembic.ini``) and hands over either an open
connection in ``config.attributes["connection"]`` (online: it runs inside modelyard's own schema transaction,
which holds the schema lock) or a URL in ``config.attributes["url"]`` (offline: the SQL is written to the
configuration's output buffer, in that URL's dialect).
"""

from __future__ import annotations

from alembic import context

from modelyard._schema import metadata

config = context.config


def _run() -> None:
    if context.is_offline_mode():
        url = config.attributes["url"]
        context.configure(url=url, target_metadata=metadata, literal_binds=True, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes["connection"]
    # Batch mode: SQLite alters most things only by copying the table ("move and copy"); `op.batch_alter_table`
    # does that on SQLite and plain ALTERs on PostgreSQL, and autogenerate writes revisions that way.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


_run()
