"""Branches and automatic step labels: runs linked to the trace they continue, Monte-Carlo step labels.

Revision ID: 0003
Revises: 0001
Create Date: 2026-12-01

Two new tables, nothing else touched:

- ``run_branches``: one row per run that continues a stored trace (resampled from a step, a step-credit
  point, or "Think longer"): the parent run, the parent sample's index and the last step kept (-1 = none,
  rollouts from the prompt itself).
- ``auto_step_labels``: append-only machine labels of steps (source ``auto:mc``: Math-Shepherd style rollouts),
  a soft label (the share of rollouts reaching the target answer) and a hard one (any did), with N, the
  target and the settings. Kept apart from ``step_labels`` so an automatic label is never a person's.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "run_branches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("parent_run_id", sa.Integer(), nullable=True),
        sa.Column("parent_sample_index", sa.Integer(), nullable=False),
        sa.Column("parent_step_index", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('resample', 'credit', 'think_longer')", name=op.f("ck_run_branches_kind")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_run_branches_run_id_runs"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["parent_run_id"], ["runs.id"], name=op.f("fk_run_branches_parent_run_id_runs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_branches")),
        sa.UniqueConstraint("run_id", name=op.f("uq_run_branches_run_id")),
    )
    op.create_index("ix_run_branches_parent_run_id", "run_branches", ["parent_run_id"])
    op.create_table(
        "auto_step_labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("soft", sa.Float(), nullable=False),
        sa.Column("hard", sa.Boolean(), nullable=False),
        sa.Column("rollouts", sa.Integer(), nullable=False),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("target_kind", sa.String(length=16), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("soft >= 0 AND soft <= 1", name=op.f("ck_auto_step_labels_soft")),
        sa.ForeignKeyConstraint(
            ["step_id"], ["steps.id"], name=op.f("fk_auto_step_labels_step_id_steps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auto_step_labels")),
    )
    op.create_index("ix_auto_step_labels_step_id_source", "auto_step_labels", ["step_id", "source"])


def downgrade() -> None:
    op.drop_index("ix_auto_step_labels_step_id_source", table_name="auto_step_labels")
    op.drop_table("auto_step_labels")
    op.drop_index("ix_run_branches_parent_run_id", table_name="run_branches")
    op.drop_table("run_branches")
