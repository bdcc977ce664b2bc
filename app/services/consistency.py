"""Self-consistency: sample k traces of one prompt in ONE batched generate, vote, and measure overthinking.

Owns: the ``ConsistencyReport`` (one card per sample, the vote, the answer groups with their correctness,
per-sample correctness and the position where the final answer first appeared in the thinking), rebuilding
that report from a stored run, the server's cap on k (:func:`check_samples`, also used by sweeps) and the
side-by-side alignment of two samples' steps (difflib over step texts).
Does not know: Gradio or plotly; the UI turns these plain dataclasses into cards and charts.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from app.domain import GenerationResult, GenerationSettings, SampleResult
from app.engine.events import CancelToken, Progress
from app.errors import InvalidInput
from app.reasoning.answers import answer_key, answers_equal
from app.reasoning.lens import summarize
from app.reasoning.steps import segment_trace
from app.reasoning.vote import VoteResult, first_answer_position, overthinking_tokens, vote
from app.services.inputs import check_samples, normalise_gold
from app.services.runs import LOCAL_USER, Saved, run_status, stream_run
from app.services.runtime import Runtime
from app.store.records import StoredSample


@dataclass
class AnswerGroup:
    """One bar of the vote: a distinct answer (its first-seen spelling; None = the samples that gave none),
    which samples gave it, and whether it is right."""

    answer: str | None
    samples: list[int]  # sample indices, in order
    correct: bool | None  # against the gold answer; None without one. Giving no answer counts as wrong.
    majority: bool

    @property
    def count(self) -> int:
        return len(self.samples)


@dataclass(kw_only=True)
class SampleCard(SampleResult):
    """One sampled trace as a card shows it: the sample record plus its vote-related measures."""

    correct: bool | None  # None when no gold answer was given
    in_majority: bool
    first_answer_position: float | None  # 0..1 through the thinking; None if never stated there
    overthinking_tokens: int | None  # thinking tokens spent after the answer first appeared
    group: int = 0  # index into ConsistencyReport.groups: the answer group this sample voted for
    mean_entropy: float | None = None  # nats over sampled tokens (app.reasoning.lens); None without token data
    forking_tokens: int | None = None  # top-20%-entropy tokens; None without token data
    pivots: int = 0  # "Wait", "Hmm", "Alternatively", ... the model wrote (counted from the text without token data)


@dataclass
class ConsistencyReport:
    """What a self-consistency run produced: the cards and the vote (``vote.counts`` drives the bar chart)."""

    run_id: int
    prompt: str
    gold: str | None
    model: str
    settings: GenerationSettings
    samples: list[SampleCard]
    vote: VoteResult
    seconds: float
    status: str  # done | cancelled | error
    error: str | None = None
    groups: list[AnswerGroup] = field(default_factory=list)  # vote.counts' order, then the no-answer group

    @property
    def k(self) -> int:
        return len(self.samples)

    def vote_text(self, what: str = "rollouts") -> str:
        """The vote in words, counting only samples that finished an answer: "3 of 4 rollouts finished an
        answer: 5 ×2 · 7 ×1 (1 cancelled) · majority correct"; with none, "no rollout finished an answer
        (4 cancelled)", never a vote. Plain text (answers are model text: the UI escapes it)."""
        missing: dict[str, int] = {}
        for s in self.samples:
            if s.extracted_answer is None:
                why = {"cancelled": "cancelled", "error": "failed"}.get(s.stop_reason, "stopped without an answer")
                missing[why] = missing.get(why, 0) + 1
        answered = sum(c for _, c in self.vote.counts)
        if self.k - answered > sum(missing.values()):  # an answer that names nothing abstains too
            missing["gave no usable answer"] = self.k - answered - sum(missing.values())
        why = f" ({', '.join(f'{n} {w}' for w, n in missing.items())})" if missing else ""
        if not self.vote.counts:
            return f"no {what.rstrip('s')} finished an answer{why}"
        counts = " · ".join(f"{a} ×{c}" for a, c in self.vote.counts)
        right = {None: "", True: " · majority correct", False: " · majority wrong"}[self.vote.majority_correct]
        return f"{answered} of {self.k} {what} finished an answer: {counts}{why}{right}"

    def mean_overthinking(self) -> float | None:
        values = [s.overthinking_tokens for s in self.samples if s.overthinking_tokens is not None]
        return sum(values) / len(values) if values else None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "prompt": self.prompt,
            "gold": self.gold,
            "model": self.model,
            "status": self.status,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "k": self.k,
            "settings": self.settings.to_dict(),
            "vote": {
                "majority": self.vote.majority,
                "share": self.vote.share,
                "agreement": self.vote.agreement,
                "counts": [[answer, count] for answer, count in self.vote.counts],
                "abstained": self.vote.abstained,
                "majority_correct": self.vote.majority_correct,
            },
            "groups": [asdict(g) for g in self.groups],
            "mean_overthinking_tokens": self.mean_overthinking(),
            "samples": [s.to_dict() for s in self.samples],
        }


def consistency_settings(base: GenerationSettings, k: int, *, max_samples: int) -> GenerationSettings:
    """``base`` with ``samples=k`` (at most ``max_samples``); a greedy base gets a sampling temperature, or all
    k traces would be identical."""
    return base.for_samples(check_samples(k, max_samples))


def answer_groups(
    answers: Sequence[str | None], outcome: VoteResult, gold: str | None
) -> tuple[list[AnswerGroup], list[int]]:
    """The vote's groups with their members (the no-answer group last, if any), and each answer's group index.

    An answer joins the first group, in order of first appearance, whose answer it equals, and an answer
    without a key abstains: the rule :func:`~app.reasoning.vote.vote` counts by, so each group's size is
    its count in ``outcome.counts``.
    """
    groups = [
        AnswerGroup(rep, [], answers_equal(rep, gold) if gold is not None else None, majority=i == 0)
        for i, (rep, _) in enumerate(outcome.counts)
    ]
    by_first_seen = sorted(groups, key=lambda g: answers.index(g.answer))
    none = AnswerGroup(None, [], False if gold is not None else None, majority=False)
    for index, answer in enumerate(answers):
        voted = answer is not None and bool(answer_key(answer))
        group = next((g for g in by_first_seen if answers_equal(g.answer, answer)), none) if voted else none
        group.samples.append(index)
    if none.samples:
        groups.append(none)
    group_of = {index: n for n, g in enumerate(groups) for index in g.samples}
    return groups, [group_of[i] for i in range(len(answers))]


def build_report(
    result: GenerationResult, run_id: int, gold: str | None, *, status: str | None = None
) -> ConsistencyReport:
    """Vote over ``result``'s extracted answers and measure each sample (pure; no model, no store)."""
    gold = normalise_gold(gold)
    answers = [s.extracted_answer for s in result.samples]
    outcome = vote(answers, gold)
    groups, group_of = answer_groups(answers, outcome, gold)
    cards = []
    for i, s in enumerate(result.samples):
        position = first_answer_position(s.thinking, s.extracted_answer, result.prompt)
        lens = summarize(s.tokens, s.thinking)
        cards.append(
            SampleCard(
                **s.sample_values(),
                correct=outcome.correct[i] if outcome.correct is not None else None,
                in_majority=groups[group_of[i]].majority,
                first_answer_position=position,
                overthinking_tokens=overthinking_tokens(s.thinking_tokens, position),
                group=group_of[i],
                mean_entropy=lens.mean_entropy,
                forking_tokens=lens.forking if lens.has_tokens else None,
                pivots=lens.n_pivots,
            )
        )
    return ConsistencyReport(
        run_id=run_id,
        prompt=result.prompt,
        gold=gold,
        model=result.model,
        settings=result.settings,
        samples=cards,
        vote=outcome,
        seconds=result.seconds,
        status=status or run_status(result),
        error=result.error,
        groups=groups,
    )


def stream_consistency(
    rt: Runtime,
    prompt: str,
    settings: GenerationSettings,
    *,
    k: int | None = None,
    gold: str | None = None,
    cancel: CancelToken | None = None,
    user: str | None = LOCAL_USER,
) -> Iterator[Progress | ConsistencyReport]:
    """Yield the engine's :class:`Progress` events while the k samples decode, then the report.

    All k samples are one batched generate (``settings.samples = k``), saved as one run of kind
    ``consistency`` with the gold answer, so the run can be reopened and labelled later. ``k`` above the
    server's ``max_samples`` is a ``ValueError`` before anything runs.
    """
    k = k if k is not None else settings.samples
    settings = consistency_settings(settings, k, max_samples=rt.settings.max_samples)
    gold = normalise_gold(gold)
    for event in stream_run(rt, prompt, settings, cancel, kind="consistency", gold=gold, deltas=False, user=user):
        if isinstance(event, Progress):
            yield event
        elif isinstance(event, Saved):
            yield build_report(event.result, event.run_id, gold)


def sample_consistency(
    rt: Runtime,
    prompt: str,
    settings: GenerationSettings,
    *,
    k: int | None = None,
    gold: str | None = None,
    cancel: CancelToken | None = None,
    progress: Callable[[Progress], None] | None = None,
    user: str | None = LOCAL_USER,
) -> ConsistencyReport:
    """Run :func:`stream_consistency` to the end; ``progress`` gets every :class:`Progress` event."""
    report = None
    for item in stream_consistency(rt, prompt, settings, k=k, gold=gold, cancel=cancel, user=user):
        if isinstance(item, Progress):
            if progress is not None:
                progress(item)
        else:
            report = item
    assert report is not None
    return report


def load_consistency_report(rt: Runtime, run_id: int, gold: str | None = None) -> ConsistencyReport:
    """Rebuild the report of a stored run (``gold`` defaults to the one saved with it)."""
    run = rt.db.get_run(run_id)
    return build_report(run.to_result(), run.run_id, gold if gold is not None else run.gold, status=run.status)


def _stored_samples(rt: Runtime, run_id: int, *indices: int) -> list[StoredSample]:
    """Samples ``indices`` (0-based) of a stored run; ``ValueError`` for one the run does not have."""
    run = rt.db.get_run(run_id)
    for index in indices:
        if not 0 <= index < len(run.samples):
            raise InvalidInput(
                f"sample {index + 1} does not exist: run {run_id} has samples 1 to {len(run.samples)}; pick one of those"
            )
    return [run.samples[i] for i in indices]


# --- side by side ---------------------------------------------------------------------------------

RowTag = Literal["equal", "replace", "delete", "insert"]
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class AlignedRow:
    """One row of the side-by-side view: a step of A, a step of B, or both (``None`` = nothing opposite).

    ``tag`` is difflib's opcode: ``equal`` (same step text), ``replace`` (steps that differ in place),
    ``delete`` (only in A) or ``insert`` (only in B). ``similarity`` is the 0..1 character ratio.
    """

    tag: RowTag
    left: str | None
    right: str | None
    left_index: int | None
    right_index: int | None
    similarity: float


@dataclass
class SideBySide:
    """Two samples of one run, their steps aligned."""

    run_id: int
    a: SampleResult
    b: SampleResult
    rows: list[AlignedRow] = field(default_factory=list)

    @property
    def identical_steps(self) -> int:
        return sum(1 for row in self.rows if row.tag == "equal")

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "a": self.a.index,
            "b": self.b.index,
            "identical_steps": self.identical_steps,
            "rows": [asdict(row) for row in self.rows],
        }


def _norm(step: str) -> str:
    return _SPACE.sub(" ", step).strip().lower()


def align_steps(left: Sequence[str], right: Sequence[str]) -> list[AlignedRow]:
    """Align two step lists with difflib (steps compare whitespace- and case-insensitively).

    A ``replace`` block pairs steps one to one and leaves the surplus on its own side, so the reader
    sees what each trace did differently at the same point.
    """
    matcher = difflib.SequenceMatcher(a=[_norm(s) for s in left], b=[_norm(s) for s in right], autojunk=False)
    rows: list[AlignedRow] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        for offset in range(max(i2 - i1, j2 - j1)):
            i, j = i1 + offset, j1 + offset
            li = i if i < i2 else None
            rj = j if j < j2 else None
            lt = left[li] if li is not None else None
            rt = right[rj] if rj is not None else None
            if tag == "equal":
                row_tag: RowTag = "equal"
            elif lt is not None and rt is not None:
                row_tag = "replace"
            else:
                row_tag = "delete" if lt is not None else "insert"
            similarity = difflib.SequenceMatcher(a=lt or "", b=rt or "", autojunk=False).ratio() if lt and rt else 0.0
            rows.append(AlignedRow(row_tag, lt, rt, li, rj, 1.0 if row_tag == "equal" else similarity))
    return rows


def side_by_side(rt: Runtime, run_id: int, a: int, b: int) -> SideBySide:
    """Samples ``a`` and ``b`` (0-based) of run ``run_id`` with their steps (thinking, then answer) aligned.

    ``NotFound`` for an unknown run, ``ValueError`` for a sample index the run does not have.
    """
    left, right = _stored_samples(rt, run_id, a, b)
    return SideBySide(
        run_id=run_id,
        a=left.to_result(),
        b=right.to_result(),
        rows=align_steps(_step_texts(left), _step_texts(right)),
    )


def _step_texts(sample: StoredSample) -> list[str]:
    """The sample's current steps (an annotator may have merged or split them), else a fresh segmentation."""
    if sample.steps:
        return [step.text for step in sample.steps]
    return [step.text for step in segment_trace(sample.thinking, sample.answer)]
