"""The one schema step from before Alembic: schema 1 (development builds before 0.1) to schema 2 (revision 0001).

A schema-1 registry carries ``schema_version`` 1 in ``modelyard_meta`` and no ``alembic_version``. This step
brings it to exactly the baseline revision's tables, and the caller then stamps it there. It is not an Alembic
revision because the baseline is what a fresh database gets: every revision stays renderable as plain SQL
(``modelyard db upgrade --sql``), which this step, computing digests in Python, is not.

The tables are the frozen ones of `modelyard._migrations._baseline`, not `modelyard._schema`, which moves on.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from modelyard._schema import text_key

from . import _baseline

_OLD_INDEXES = ("ix_tasks_project_name", "ix_models_created", "ix_models_project_created", "ix_models_name_created",
                "ix_model_tags_tag")


def upgrade_schema_1(conn: Connection) -> None:
    """Index names, projects and tags by digest (``*_key`` columns), so that any length can be indexed."""
    inspector = sa.inspect(conn)
    for name in ("tasks", "models"):
        present = {c["name"] for c in inspector.get_columns(name)}
        for column in ("project_key", "name_key"):
            if column not in present:
                conn.execute(sa.text(f"ALTER TABLE {name} ADD COLUMN {column} VARCHAR(32)"))
        table = sa.table(name, sa.column("id"), sa.column("project"), sa.column("name"), sa.column("project_key"),
                         sa.column("name_key"))
        rows = conn.execute(sa.select(table.c.id, table.c.project, table.c.name)).all()
        if rows:
            conn.execute(sa.update(table).where(table.c.id == sa.bindparam("row_id"))
                         .values(project_key=sa.bindparam("pk"), name_key=sa.bindparam("nk")),
                         [{"row_id": r.id, "pk": text_key(r.project), "nk": text_key(r.name)} for r in rows])
    for old in _OLD_INDEXES:
        conn.execute(sa.text(f"DROP INDEX IF EXISTS {old}"))
    for table in (_baseline.tasks, _baseline.models):
        for index in table.indexes:
            index.create(conn, checkfirst=True)
        if conn.dialect.name == "postgresql":
            for ddl in _baseline.key_statistics_ddl(table):
                conn.execute(ddl)
    # model_tags is derived from models.tags: rebuild it with its new primary key.
    conn.execute(sa.text("DROP TABLE IF EXISTS model_tags"))
    # The tables schema 1 did not have yet (versions, task_models, destinations), and model_tags.
    _baseline.metadata.create_all(conn, checkfirst=True)
    models = sa.table("models", sa.column("id"), sa.column("tags"), sa.column("created"))
    tag_rows = []
    for model_id, tags_text, created in conn.execute(sa.select(models.c.id, models.c.tags, models.c.created)).all():
        try:
            tags = json.loads(tags_text or "[]")
        except ValueError:
            tags = []  # an unreadable row stays unreadable; it just is not found by tag
        if isinstance(tags, list):
            tag_rows += [{"model_id": model_id, "tag_key": text_key(t), "tag": t, "created": created}
                         for t in dict.fromkeys(t for t in tags if isinstance(t, str) and t)]
    if tag_rows:
        conn.execute(sa.insert(_baseline.model_tags), tag_rows)
    conn.execute(sa.text("UPDATE modelyard_meta SET value = '2' WHERE key = 'schema_version'"))
