"""SQLAlchemy 2.0 declarative models: the tables and their constraints, nothing else.

Rows never leave the store: ``convert.py`` turns them into the dataclasses of ``records.py`` and
``app.domain``. The schema itself is created and changed only by the Alembic migrations in
``migrations/versions``; a test checks that those migrations and these models agree.

Two tables are append-only histories: ``step_labels`` and ``sample_verdicts``. The current label of a step
by an annotator is the row with the highest id for that (step, annotator) pair, so a change of mind adds a
row and nothing a person did is lost.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from app.domain import BRANCH_KINDS

#: Constraint names spelled out, so migrations on SQLite (batch mode) and Postgres can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

RUN_KINDS: tuple[str, ...] = ("playground", "consistency", "compare", "sweep")
RUN_STATUSES: tuple[str, ...] = ("done", "cancelled", "error")
#: ``runs.lifecycle`` while a run is not finished (NULL once it is; ``status`` then says how it ended).
RUN_LIFECYCLES: tuple[str, ...] = ("running", "interrupted")
STEP_SOURCES: tuple[str, ...] = ("thinking", "answer")
#: The source of Monte-Carlo step labels (Math-Shepherd): rollouts from after the step reach the target answer.
AUTO_MC = "auto:mc"
ANNOTATOR_NAME_MAX = 64


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def to_utc(moment: datetime) -> datetime:
    """The same instant as an aware UTC datetime; a naive value is taken to be UTC already."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: the same on SQLite (no time zones) and Postgres.

    A naive value passed in is taken to be UTC already.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return to_utc(value).replace(tzinfo=None) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=timezone.utc) if value is not None else None


_DELETED = "deleted_at IS NOT NULL"
_NO_STEPS = "n_steps = 0"


def _in(column: str, values: tuple[Any, ...]) -> str:
    """A portable ``column IN (...)`` CHECK expression over constant values (no user input)."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Annotator(Base):
    __tablename__ = "annotators"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(ANNOTATOR_NAME_MAX), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Prompt(Base):
    """A problem text, stored once: runs of the same text (any model, any settings) share it."""

    __tablename__ = "prompts"

    id: Mapped[int] = mapped_column(primary_key=True)
    text_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the UTF-8 text
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Sweep(Base):
    """A budget/settings sweep over a problem set; its runs point back here."""

    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    settings: Mapped[dict[str, Any]]
    problems: Mapped[list[Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Run(Base):
    """One call of the engine for one prompt: its settings, outcome and timings."""

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(_in("kind", RUN_KINDS), name="kind"),
        CheckConstraint(_in("status", RUN_STATUSES), name="status"),
        Index("ix_runs_created_at", "created_at"),
        Index("ix_runs_model", "model"),
        Index("ix_runs_kind", "kind"),
        Index("ix_runs_prompt_id", "prompt_id"),
        Index("ix_runs_sweep_id", "sweep_id"),
        # The few deleted runs, found without a scan (0005); partial, so no query of live runs is tempted by it.
        Index("ix_runs_deleted", "id", sqlite_where=text(_DELETED), postgresql_where=text(_DELETED)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"))
    kind: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(64))
    settings: Mapped[dict[str, Any]]
    seed: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    gold: Mapped[str | None] = mapped_column(Text)
    sweep_id: Mapped[int | None] = mapped_column(ForeignKey("sweeps.id", ondelete="SET NULL"))
    label: Mapped[str | None] = mapped_column(String(255))  # the variant's name, e.g. "budget 256"
    messages: Mapped[list[Any]]  # multi-turn context that preceded the prompt
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Revision 0002: ownership, soft deletion, crash recovery (see that migration's docstring).
    created_by: Mapped[str | None] = mapped_column(String(ANNOTATOR_NAME_MAX))
    deleted_at: Mapped[datetime | None]
    deleted_by: Mapped[str | None] = mapped_column(String(ANNOTATOR_NAME_MAX))
    lifecycle: Mapped[str | None] = mapped_column(String(16))
    heartbeat_at: Mapped[datetime | None]

    prompt: Mapped[Prompt] = relationship()
    samples: Mapped[list[Sample]] = relationship(
        back_populates="run", order_by="Sample.index", cascade="all, delete-orphan", passive_deletes=True
    )


class Sample(Base):
    """One generated trace of a run."""

    __tablename__ = "samples"
    __table_args__ = (
        Index("ix_samples_run_id_index", "run_id", "index", unique=True),
        Index("ix_samples_stop_reason", "stop_reason"),
        Index("ix_samples_run_id_n_steps", "run_id", "n_steps"),  # the filtered queue's count, in the index (0005)
        # Samples without steps (running or failed runs): the queue's size without a scan (0005); partial, so
        # the queue's walk in run order is never tempted by it.
        Index("ix_samples_without_steps", "id", sqlite_where=text(_NO_STEPS), postgresql_where=text(_NO_STEPS)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    raw_text: Mapped[str] = mapped_column(Text)
    thinking: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    extracted_answer: Mapped[str | None] = mapped_column(Text)
    thinking_tokens: Mapped[int]
    answer_tokens: Mapped[int]
    stop_reason: Mapped[str] = mapped_column(String(32))
    continuations: Mapped[int] = mapped_column(default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    time_to_first_token: Mapped[float | None] = mapped_column(Float)
    thinking_seconds: Mapped[float | None] = mapped_column(Float)
    tokens_per_second: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text)
    n_steps: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # active steps (progress.py)

    run: Mapped[Run] = relationship(back_populates="samples")
    # Every step row, replaced ones included; reads go through queries that keep only the active ones.
    steps: Mapped[list[Step]] = relationship(cascade="all, delete-orphan", passive_deletes=True)


class Step(Base):
    """A rateable span of a sample. Merging or splitting deactivates rows and adds new ones, never rewrites text,
    so every label keeps pointing at the exact text it was given for. ``index`` orders the active steps."""

    __tablename__ = "steps"
    __table_args__ = (
        CheckConstraint(_in("source", STEP_SOURCES), name="source"),
        Index("ix_steps_sample_id_active_index", "sample_id", "active", "index"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"))
    index: Mapped[int]
    source: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    start: Mapped[int]
    end: Mapped[int]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StepLabel(Base):
    """Append-only: one row per rating given. The current label per (step, annotator) is the newest row."""

    __tablename__ = "step_labels"
    __table_args__ = (
        CheckConstraint("rating IN (-1, 0, 1)", name="rating"),
        Index("ix_step_labels_step_id_annotator_id", "step_id", "annotator_id"),
        Index("ix_step_labels_annotator_id_created_at", "annotator_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("steps.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"))
    rating: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str] = mapped_column(Text, default="")
    first_error: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SampleProgress(Base):
    """Kept as labels and steps change (``progress.py``): an annotator's current labels on one sample's active
    steps. ``annotator_id`` 0 is "anyone" (labels by everyone together), so it has no foreign key."""

    __tablename__ = "sample_progress"
    __table_args__ = (Index("ix_sample_progress_annotator_id_done", "annotator_id", "done", "sample_id"),)

    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"), primary_key=True)
    annotator_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    n_labelled: Mapped[int] = mapped_column(Integer)
    first_error: Mapped[bool] = mapped_column(Boolean)
    done: Mapped[bool] = mapped_column(Boolean)


class SampleVerdict(Base):
    """Append-only: a person's verdict on a whole sample (correct or not; NULL withdraws it). Newest row wins."""

    __tablename__ = "sample_verdicts"
    __table_args__ = (
        Index("ix_sample_verdicts_sample_id_annotator_id", "sample_id", "annotator_id"),
        Index("ix_sample_verdicts_annotator_id_created_at", "annotator_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"))
    correct: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Preference(Base):
    """One recorded choice between two samples of the same prompt. A ranking of n samples is stored as its
    n*(n-1)/2 implied pairs sharing a ``rank_group``."""

    __tablename__ = "preferences"
    __table_args__ = (
        CheckConstraint("chosen_sample_id <> rejected_sample_id", name="distinct_samples"),
        Index("ix_preferences_prompt_id", "prompt_id"),
        Index("ix_preferences_chosen_sample_id", "chosen_sample_id"),
        Index("ix_preferences_rejected_sample_id", "rejected_sample_id"),
        Index("ix_preferences_annotator_id_created_at", "annotator_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"))
    chosen_sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"))
    rejected_sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"))
    reason: Mapped[str] = mapped_column(Text, default="")
    rank_group: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SampleTokens(Base):
    """Per-token confidence of one sample (at most one row per sample), packed compactly (see ``tokens.py``):
    little-endian int32 ids, float16 probabilities and entropies (NaN = forced token), ``top_n`` alternatives
    per token. Samples saved before capture existed, or from a server without logprobs, have no row."""

    __tablename__ = "sample_tokens"

    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"), primary_key=True)
    n_tokens: Mapped[int] = mapped_column(Integer)
    top_n: Mapped[int] = mapped_column(Integer)
    token_ids: Mapped[bytes] = mapped_column(LargeBinary)
    labels: Mapped[str] = mapped_column(Text)
    prob: Mapped[bytes] = mapped_column(LargeBinary)
    entropy: Mapped[bytes] = mapped_column(LargeBinary)
    top_ids: Mapped[bytes] = mapped_column(LargeBinary)
    top_probs: Mapped[bytes] = mapped_column(LargeBinary)
    pieces: Mapped[list[Any]]
    vocab: Mapped[dict[str, Any]]
    source: Mapped[str] = mapped_column(Text)


class Probe(Base):
    """A hint-faithfulness probe: its hint, settings and problems (each with the hint's target answer)."""

    __tablename__ = "probes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    hint: Mapped[str] = mapped_column(String(32))
    hint_correct: Mapped[bool] = mapped_column(Boolean, default=False)
    settings: Mapped[dict[str, Any]]
    problems: Mapped[list[Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProbeRun(Base):
    """Links a probe to one of its runs: which problem, and which arm ("baseline" without the hint, "hinted")."""

    __tablename__ = "probe_runs"
    __table_args__ = (Index("ix_probe_runs_probe_id", "probe_id"), Index("ix_probe_runs_run_id", "run_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    probe_id: Mapped[int] = mapped_column(ForeignKey("probes.id", ondelete="CASCADE"))
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    problem_index: Mapped[int] = mapped_column(Integer)
    arm: Mapped[str] = mapped_column(String(16))


class RunBranch(Base):
    """Marks a run as continuing a stored trace: which run and sample, and the last step kept.

    ``parent_step_index`` is the 0-based index of the last step of the parent sample that the branch's prefix
    keeps (-1: none, the rollouts start from the prompt). ``kind`` says why it was made: ``resample`` (Branch
    here), ``credit`` (a point of the step-credit curve or an auto-label) or ``think_longer``. Deleting the
    parent keeps the branch as an ordinary run (``parent_run_id`` becomes NULL).
    """

    __tablename__ = "run_branches"
    __table_args__ = (
        CheckConstraint(_in("kind", BRANCH_KINDS), name="kind"),
        Index("ix_run_branches_parent_run_id", "parent_run_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), unique=True)
    parent_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    parent_sample_index: Mapped[int]
    parent_step_index: Mapped[int]
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AutoStepLabel(Base):
    """Append-only machine label of a step; the current one per (step, source) is the newest row.

    Never a person's: it lives apart from ``step_labels`` and has no annotator. ``soft`` is the share of the
    ``rollouts`` continuations from after the step that reached ``target`` (the gold answer, or the majority
    of the rollouts when there is no gold: ``target_kind``); ``hard`` is whether any did.
    """

    __tablename__ = "auto_step_labels"
    __table_args__ = (
        CheckConstraint("soft >= 0 AND soft <= 1", name="soft"),
        Index("ix_auto_step_labels_step_id_source", "step_id", "source"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("steps.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(32))
    soft: Mapped[float] = mapped_column(Float)
    hard: Mapped[bool] = mapped_column(Boolean)
    rollouts: Mapped[int]
    target: Mapped[str | None] = mapped_column(Text)
    target_kind: Mapped[str] = mapped_column(String(16))
    settings: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
