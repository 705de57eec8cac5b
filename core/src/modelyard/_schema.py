"""The registry's tables and indexes, as this release creates them (SQLAlchemy Core metadata).

This is the schema at the newest Alembic revision (`modelyard._migrations.HEAD`): a fresh database gets it
through ``create_all`` and is stamped at that revision. Change a table here *and* add a revision that makes
the same change to existing databases; ``tests/core/test_migrations.py`` compares the two on both backends.

Names, projects and tags are free text of any length, but a PostgreSQL b-tree row holds at most ~2.7 kB, so they
are indexed through fixed-size digests (``*_key`` columns, see `text_key`) and compared in full.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

#: The level recorded as ``schema_version`` in ``modelyard_meta``. Releases before Alembic read it and refuse
#: a registry whose level is higher than theirs; a revision that those releases must not open bumps it (and
#: this constant) in the same revision.
SCHEMA_VERSION = 2

metadata = sa.MetaData()

meta = sa.Table(
    "modelyard_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("project", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("output_uri", sa.Text),
    sa.Column("tags", sa.Text, nullable=False, default="[]"),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
    sa.Column("project_key", sa.String(32)),
    sa.Column("name_key", sa.String(32)),
    sa.Index("ix_tasks_project_name_key", "project_key", "name_key", "created"),
)

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("task_id", sa.String(32)),
    sa.Column("project", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("comment", sa.Text, nullable=False, default=""),
    sa.Column("framework", sa.Text),
    sa.Column("config_text", sa.Text),
    sa.Column("labels", sa.Text),
    sa.Column("tags", sa.Text, nullable=False, default="[]"),
    sa.Column("system_tags", sa.Text, nullable=False, default="[]"),
    sa.Column("published", sa.Boolean, nullable=False, default=False),
    sa.Column("archived", sa.Boolean, nullable=False, default=False),
    sa.Column("base_model_id", sa.String(32)),
    sa.Column("upload_uri", sa.Text),
    sa.Column("version_count", sa.Integer, nullable=False, default=0),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
    sa.Column("project_key", sa.String(32)),
    sa.Column("name_key", sa.String(32)),
    # Newest-first listings (ORDER BY created DESC, id DESC LIMIT n) read these backwards and stop after n
    # rows; benchmarks/bench_query_scale.py measures them at 100,000 models.
    sa.Index("ix_models_created_id", "created", "id"),
    sa.Index("ix_models_project_key_created", "project_key", "created", "id"),
    sa.Index("ix_models_name_key_created", "name_key", "created", "id"),
    sa.Index("ix_models_task", "task_id"),
)

model_tags = sa.Table(
    "model_tags",
    metadata,
    sa.Column("model_id", sa.String(32), sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("tag_key", sa.String(32), primary_key=True),
    sa.Column("tag", sa.Text, nullable=False),
    # The model's creation time (never changes), copied here so that "newest models with tag t" reads this
    # index backwards and stops after n rows, whether t is on half the models or on a handful.
    sa.Column("created", sa.Float, nullable=False),
    sa.Index("ix_model_tags_key_created", "tag_key", "created", "model_id"),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_id", sa.String(32), sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("iteration", sa.BigInteger),
    sa.Column("uri", sa.Text, nullable=False),
    sa.Column("file_name", sa.Text, nullable=False),
    # None for a single file, "dir" for a manifest package, "zip" for a user-supplied zip package.
    sa.Column("package_format", sa.String(8)),
    sa.Column("size", sa.BigInteger),
    sa.Column("sha256", sa.String(64)),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("tags", sa.Text, nullable=False, default="[]"),
    sa.Column("meta", sa.Text, nullable=False, default="{}"),
    sa.Column("pinned", sa.Boolean, nullable=False, default=False),
    # The journal: what a later process needs to finish or fail this upload.
    sa.Column("job", sa.Text),
    sa.Column("owner", sa.Text),
    sa.Column("host", sa.Text),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
    sa.UniqueConstraint("model_id", "version", name="uq_versions_model_version"),
    sa.Index("ix_versions_state_host", "state", "host"),
    sa.Index("ix_versions_sha", "model_id", "sha256"),
    sa.Index("ix_versions_uri", "uri"),
)

task_models = sa.Table(
    "task_models",
    metadata,
    sa.Column("task_id", sa.String(32), sa.ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("model_id", sa.String(32), sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role", sa.String(8), primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("created", sa.Float, nullable=False),
)

destinations = sa.Table(
    "destinations",
    metadata,
    # Every destination root and registered URI this registry wrote; stored URIs are confined to these.
    sa.Column("uri", sa.Text, primary_key=True),
    sa.Column("created", sa.Float, nullable=False),
)

# PostgreSQL's planner takes `key = k AND text = t` for two independent filters and underestimates the rows
# a name, project or tag matches by orders of magnitude (then it joins and sorts all of them instead of
# reading the newest through the index). Functional-dependency statistics tell it the key determines the text.
_KEY_STATISTICS = {
    tasks: [("st_tasks_project_key", "project_key, project"), ("st_tasks_name_key", "name_key, name")],
    models: [("st_models_project_key", "project_key, project"), ("st_models_name_key", "name_key, name")],
    model_tags: [("st_model_tags_tag_key", "tag_key, tag")],
}


def key_statistics_ddl(table: sa.Table) -> list[sa.DDL]:
    """Return the PostgreSQL ``CREATE STATISTICS`` statements of a table (none for tables without digests)."""
    return [sa.DDL(f"CREATE STATISTICS IF NOT EXISTS {name} (dependencies) ON {columns} FROM {table.name}")
            for name, columns in _KEY_STATISTICS.get(table, ())]


for _table in _KEY_STATISTICS:
    for _ddl in key_statistics_ddl(_table):
        sa.event.listen(_table, "after_create", _ddl.execute_if(dialect="postgresql"))

#: The version states of an upload not yet settled (the journal: resumed, waited for, never garbage).
ACTIVE_STATES = ("pending", "uploading")


def text_key(value: str) -> str:
    """Return the fixed-size index key of a name, project or tag (128 bits of its sha256, in hex)."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]
