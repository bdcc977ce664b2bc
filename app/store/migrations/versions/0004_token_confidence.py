"""Per-token confidence of samples, and hint-faithfulness probes with the runs they made.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Only adds tables, so it is independent of the other migrations. Written against the tables as they are at
this revision, never importing app.store.models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sample_tokens",
        sa.Column("sample_id", sa.Integer(), nullable=False),
        sa.Column("n_tokens", sa.Integer(), nullable=False),
        sa.Column("top_n", sa.Integer(), nullable=False),
        sa.Column("token_ids", sa.LargeBinary(), nullable=False),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("prob", sa.LargeBinary(), nullable=False),
        sa.Column("entropy", sa.LargeBinary(), nullable=False),
        sa.Column("top_ids", sa.LargeBinary(), nullable=False),
        sa.Column("top_probs", sa.LargeBinary(), nullable=False),
        sa.Column("pieces", sa.JSON(), nullable=False),
        sa.Column("vocab", sa.JSON(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sample_id"], ["samples.id"], name=op.f("fk_sample_tokens_sample_id_samples"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("sample_id", name=op.f("pk_sample_tokens")),
    )
    op.create_table(
        "probes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("hint", sa.String(length=32), nullable=False),
        sa.Column("hint_correct", sa.Boolean(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_probes")),
    )
    op.create_table(
        "probe_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("probe_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("problem_index", sa.Integer(), nullable=False),
        sa.Column("arm", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["probe_id"], ["probes.id"], name=op.f("fk_probe_runs_probe_id_probes"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_probe_runs_run_id_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_probe_runs")),
    )
    op.create_index("ix_probe_runs_probe_id", "probe_runs", ["probe_id"])
    op.create_index("ix_probe_runs_run_id", "probe_runs", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_probe_runs_run_id", table_name="probe_runs")
    op.drop_index("ix_probe_runs_probe_id", table_name="probe_runs")
    op.drop_table("probe_runs")
    op.drop_table("probes")
    op.drop_table("sample_tokens")
