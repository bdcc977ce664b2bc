"""Read-side records: the plain, frozen dataclasses ``Store`` methods return instead of ORM rows.

They know nothing of SQLAlchemy, so the UI, the CLI and the export layer can hold them after the session
is gone. Where a record mirrors a domain object it can turn back into one (``to_result``, ``to_step``,
``to_rating``), e.g. to replay a stored run in the playground.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from app.domain import BranchLink, GenerationResult, GenerationSettings, Phase, SampleResult, Step
from app.labelled_data import StepRating

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")


def same_named(cls: type[R], source: object, **given: Any) -> R:
    """A ``cls`` whose fields are ``given``, or else ``source``'s attribute of the same name (a record from an
    ORM row, or one record from another)."""
    copied = {f.name: getattr(source, f.name) for f in fields(cls) if f.init and f.name not in given}
    return cls(**copied, **given)


@dataclass(frozen=True)
class StoredStep:
    step_id: int
    sample_id: int
    index: int
    source: str  # "thinking" | "answer"
    text: str
    start: int
    end: int
    active: bool = True

    def to_step(self) -> Step:
        return Step(index=self.index, text=self.text, start=self.start, end=self.end, source=cast(Phase, self.source))


@dataclass(kw_only=True)
class StoredSample(SampleResult):
    """A saved sample: the one sample record (:class:`~app.domain.SampleResult`, every field of it) plus where it
    is stored and its active steps. Add per-sample fields to ``SampleResult``, never here."""

    sample_id: int
    run_id: int
    steps: list[StoredStep] = field(default_factory=list)  # active steps, in order


@dataclass(frozen=True)
class StoredRun:
    run_id: int
    prompt_id: int
    prompt: str
    kind: str
    status: str
    model: str
    format: str
    settings: GenerationSettings
    seed: int | None
    error: str | None
    gold: str | None
    sweep_id: int | None
    label: str | None
    messages: list[dict[str, str]]
    seconds: float
    created_at: datetime
    samples: list[StoredSample] = field(default_factory=list)
    created_by: str | None = None  # the login that started it; None for runs saved before revision 0002
    deleted: bool = False  # hidden from History (soft-deleted); its labels stay for export
    #: "int4" | "nf4" | "int8" | "bf16" | "fp32"; None for runs saved before it was recorded
    precision: str | None = None

    def to_result(self) -> GenerationResult:
        """The run as the engine returned it (for replaying it in the playground)."""
        return GenerationResult(
            model=self.model,
            format=self.format,
            settings=self.settings,
            samples=[s.to_result() for s in self.samples],
            prompt=self.prompt,
            messages=list(self.messages),
            seconds=self.seconds,
            error=self.error,
            precision=self.precision,
        )


@dataclass(frozen=True)
class RunSummary:
    """One row of the History table."""

    run_id: int
    created_at: datetime
    kind: str
    status: str
    model: str
    format: str
    prompt_excerpt: str
    n_samples: int
    answers: tuple[str | None, ...]  # extracted answer per sample, in sample order
    stop_reasons: tuple[str, ...]  # per sample, in sample order
    thinking_tokens: int  # summed over samples
    seconds: float
    label: str | None
    sweep_id: int | None
    gold: str | None
    created_by: str | None = None


@dataclass(frozen=True, kw_only=True)
class RunSetSummary:
    """What a sweep and a probe share: a named set of runs over ``problems`` made with ``settings``."""

    name: str
    settings: dict[str, Any]
    problems: list[dict[str, Any]]
    created_at: datetime
    n_runs: int  # runs saved so far


@dataclass(frozen=True, kw_only=True)
class SweepSummary(RunSetSummary):
    sweep_id: int


@dataclass(frozen=True, kw_only=True)
class ProbeSummary(RunSetSummary):
    """A hint-faithfulness probe: ``hint`` was added to every problem's "hinted" arm."""

    probe_id: int
    hint: str
    hint_correct: bool


@dataclass(frozen=True)
class ProbeRunRecord:
    """One run of a probe: which of the probe's problems it answers (``problem_index``, 0-based) and in which
    arm ("baseline", without the hint, or "hinted", with it)."""

    problem_index: int
    arm: str
    run: StoredRun


@dataclass(frozen=True)
class LabelRecord:
    """One step label row; ``current_labels`` returns the newest per (step, annotator)."""

    label_id: int
    step_id: int
    step_index: int
    annotator: str
    rating: int
    comment: str
    first_error: bool
    created_at: datetime
    step_active: bool = True

    def to_rating(self) -> StepRating:
        return same_named(StepRating, self)


@dataclass(frozen=True)
class QueueItem:
    """One sample in an annotator's labelling queue."""

    sample_id: int
    run_id: int
    sample_index: int
    prompt_excerpt: str
    model: str
    n_steps: int
    n_labelled: int  # active steps with a current label by the annotator (by anyone if no annotator given)
    done: bool  # every step labelled, or a first error marked


@dataclass(frozen=True)
class LabelProgress:
    labelled: int  # samples done (see QueueItem.done)
    total: int  # samples with at least one step

    @property
    def text(self) -> str:
        return f"{self.labelled} of {self.total} samples labelled"


@dataclass(frozen=True)
class PreferenceRecord:
    preference_id: int
    prompt_id: int
    chosen_sample_id: int
    rejected_sample_id: int
    annotator: str
    reason: str
    rank_group: str | None
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class BranchInfo(BranchLink):
    """A run's stored :class:`~app.domain.BranchLink` (see ``models.RunBranch``): which run it is and when."""

    run_id: int
    created_at: datetime


@dataclass(frozen=True)
class AutoLabelRecord:
    """The current automatic label of one step."""

    label_id: int
    step_id: int
    step_index: int
    source: str
    soft: float
    hard: bool
    rollouts: int
    target: str | None
    target_kind: str
    settings: dict[str, Any]
    created_at: datetime
