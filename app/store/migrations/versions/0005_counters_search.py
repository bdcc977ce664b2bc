"""Counters kept as the data changes, and indexed text search: what keeps the store fast at 100,000 runs.

Revision ID: 0005
Revises: 0002
Create Date: 2026-12-05

- ``samples.n_steps`` (active steps) and the ``sample_progress`` table (per sample and annotator: labelled steps,
  first error, done; annotator 0 = anyone), which the labelling queue reads instead of recounting the whole
  store per click (``ix_samples_without_steps`` and ``ix_runs_deleted`` let it count in indexes). Both are filled here from the existing rows (``app.store.progress.refresh_progress``).
- Text search (``app.store.search``): FTS5 trigram tables on SQLite, ``pg_trgm`` GIN indexes on PostgreSQL,
  filled from the existing rows.

Plain ADD/DROP COLUMN and CREATE TABLE, never a batch rebuild (see 0002).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.store import search
from app.store.progress import refresh_progress

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("samples", sa.Column("n_steps", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "sample_progress",
        sa.Column("sample_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("n_labelled", sa.Integer(), nullable=False),
        sa.Column("first_error", sa.Boolean(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sample_id"], ["samples.id"], name=op.f("fk_sample_progress_sample_id_samples"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("sample_id", "annotator_id", name=op.f("pk_sample_progress")),
    )
    op.create_index("ix_sample_progress_annotator_id_done", "sample_progress", ["annotator_id", "done", "sample_id"])
    op.create_index("ix_samples_run_id_n_steps", "samples", ["run_id", "n_steps"])
    no_steps = sa.text("n_steps = 0")
    op.create_index("ix_samples_without_steps", "samples", ["id"], sqlite_where=no_steps, postgresql_where=no_steps)
    deleted = sa.text("deleted_at IS NOT NULL")
    op.create_index("ix_runs_deleted", "runs", ["id"], sqlite_where=deleted, postgresql_where=deleted)
    connection = op.get_bind()
    refresh_progress(connection, None)
    search.install(connection)


def downgrade() -> None:
    connection = op.get_bind()
    search.uninstall(connection)
    op.drop_index("ix_runs_deleted", table_name="runs")
    op.drop_index("ix_samples_without_steps", table_name="samples")
    op.drop_index("ix_samples_run_id_n_steps", table_name="samples")
    op.drop_index("ix_sample_progress_annotator_id_done", table_name="sample_progress")
    op.drop_table("sample_progress")
    op.drop_column("samples", "n_steps")
