"""Initial schema: prompts, runs, samples, steps, append-only step labels and verdicts, preferences, sweeps.

Revision ID: 0001
Revises:
Create Date: 2026-01-01

Written against the tables as they are at this revision, never importing app.store.models, so it keeps
describing revision 0001 however the models change later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), nullable=False)


def _created_at() -> sa.Column:
    # Naive UTC (see UTCDateTime in models.py).
    return sa.Column("created_at", sa.DateTime(), nullable=False)


def _fk(table: str, column: str, target: str, ondelete: str | None = None) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "annotators",
        _id(),
        sa.Column("name", sa.String(length=64), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotators")),
        sa.UniqueConstraint("name", name=op.f("uq_annotators_name")),
    )
    op.create_table(
        "prompts",
        _id(),
        sa.Column("text_hash", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompts")),
        sa.UniqueConstraint("text_hash", name=op.f("uq_prompts_text_hash")),
    )
    op.create_table(
        "sweeps",
        _id(),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweeps")),
    )
    op.create_table(
        "runs",
        _id(),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("format", sa.String(length=64), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("gold", sa.Text(), nullable=True),
        sa.Column("sweep_id", sa.Integer(), nullable=True),
        sa.Column("label", sa.String(length=255), nullable=True),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        _created_at(),
        sa.CheckConstraint("kind IN ('playground', 'consistency', 'compare', 'sweep')", name=op.f("ck_runs_kind")),
        sa.CheckConstraint("status IN ('done', 'cancelled', 'error')", name=op.f("ck_runs_status")),
        _fk("runs", "prompt_id", "prompts"),
        _fk("runs", "sweep_id", "sweeps", ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    for column in ("created_at", "kind", "model", "prompt_id", "sweep_id"):
        op.create_index(f"ix_runs_{column}", "runs", [column])

    op.create_table(
        "samples",
        _id(),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("raw_text", sa.Text(), nullable=False),
        sa.Column("thinking", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("extracted_answer", sa.Text(), nullable=True),
        sa.Column("thinking_tokens", sa.Integer(), nullable=False),
        sa.Column("answer_tokens", sa.Integer(), nullable=False),
        sa.Column("stop_reason", sa.String(length=32), nullable=False),
        sa.Column("continuations", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("time_to_first_token", sa.Float(), nullable=True),
        sa.Column("thinking_seconds", sa.Float(), nullable=True),
        sa.Column("tokens_per_second", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _fk("samples", "run_id", "runs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_samples")),
    )
    op.create_index("ix_samples_run_id_index", "samples", ["run_id", "index"], unique=True)
    op.create_index("ix_samples_stop_reason", "samples", ["stop_reason"])

    op.create_table(
        "steps",
        _id(),
        sa.Column("sample_id", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("end", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        _created_at(),
        sa.CheckConstraint("source IN ('thinking', 'answer')", name=op.f("ck_steps_source")),
        _fk("steps", "sample_id", "samples", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_steps")),
    )
    op.create_index("ix_steps_sample_id_active_index", "steps", ["sample_id", "active", "index"])

    op.create_table(
        "step_labels",
        _id(),
        sa.Column("step_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("first_error", sa.Boolean(), nullable=False),
        _created_at(),
        sa.CheckConstraint("rating IN (-1, 0, 1)", name=op.f("ck_step_labels_rating")),
        _fk("step_labels", "step_id", "steps", ondelete="CASCADE"),
        _fk("step_labels", "annotator_id", "annotators"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_step_labels")),
    )
    op.create_index("ix_step_labels_step_id_annotator_id", "step_labels", ["step_id", "annotator_id"])
    op.create_index("ix_step_labels_annotator_id_created_at", "step_labels", ["annotator_id", "created_at"])

    op.create_table(
        "sample_verdicts",
        _id(),
        sa.Column("sample_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("correct", sa.Boolean(), nullable=True),
        _created_at(),
        _fk("sample_verdicts", "sample_id", "samples", ondelete="CASCADE"),
        _fk("sample_verdicts", "annotator_id", "annotators"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sample_verdicts")),
    )
    op.create_index("ix_sample_verdicts_sample_id_annotator_id", "sample_verdicts", ["sample_id", "annotator_id"])
    op.create_index("ix_sample_verdicts_annotator_id_created_at", "sample_verdicts", ["annotator_id", "created_at"])

    op.create_table(
        "preferences",
        _id(),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("chosen_sample_id", sa.Integer(), nullable=False),
        sa.Column("rejected_sample_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("rank_group", sa.String(length=36), nullable=True),
        _created_at(),
        sa.CheckConstraint("chosen_sample_id <> rejected_sample_id", name=op.f("ck_preferences_distinct_samples")),
        _fk("preferences", "prompt_id", "prompts"),
        _fk("preferences", "chosen_sample_id", "samples", ondelete="CASCADE"),
        _fk("preferences", "rejected_sample_id", "samples", ondelete="CASCADE"),
        _fk("preferences", "annotator_id", "annotators"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_preferences")),
    )
    for columns in (["prompt_id"], ["chosen_sample_id"], ["rejected_sample_id"], ["annotator_id", "created_at"]):
        op.create_index(f"ix_preferences_{'_'.join(columns)}", "preferences", columns)


def downgrade() -> None:
    # Children before parents; dropping a table drops its indexes.
    for table in (
        "preferences",
        "sample_verdicts",
        "step_labels",
        "steps",
        "samples",
        "runs",
        "sweeps",
        "prompts",
        "annotators",
    ):
        op.drop_table(table)
