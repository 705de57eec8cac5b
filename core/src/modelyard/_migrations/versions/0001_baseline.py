"""Baseline: the schema of modelyard 0.1 (its ``schema_version`` 2).

A registry created by modelyard 0.1 holds exactly these tables and is stamped at this revision, unchanged,
when a newer modelyard first opens it. The tables are frozen in `modelyard._migrations._baseline`.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

from modelyard._migrations import _baseline

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create every table, index and statistics object of schema 2, and record ``schema_version`` 2."""
    # Offline (`--sql`), the bind is Alembic's mock connection: create_all then writes the DDL out.
    _baseline.metadata.create_all(op.get_bind(), checkfirst=False)
    # What releases before Alembic read to decide whether they may open the registry.
    op.bulk_insert(_baseline.meta, [{"key": "schema_version", "value": "2"}])


def downgrade() -> None:
    """Drop every table of schema 2, and with them every model, version and task."""
    _baseline.metadata.drop_all(op.get_bind(), checkfirst=False)
