"""Branching a stored trace: resample from a step ×N (with a vote), the step-credit curve, "Think longer".

Owns: turning (run, sample, step) into a :class:`~app.domain.TracePrefix`, the checks on what a person asked
for (the run exists, the step is in range, 1 <= N <= max_samples, the sample has steps), batching every
rollout of a trace into as few generates as the row cap allows, and saving each point's rollouts as a run
linked to its parent (``BranchLink``). The curve's arithmetic is in :mod:`app.reasoning.credit`.
Indexes are 0-based here; the CLI and UI show them 1-based.
Does not know: Gradio, plotly or the command line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.domain import BranchKind, BranchLink, GenerationResult, GenerationSettings, SampleResult, TracePrefix
from app.engine.events import CancelToken, Progress, RolloutBatch
from app.errors import InvalidInput
from app.reasoning.credit import CreditCurve, credit_curve
from app.services.consistency import ConsistencyReport, build_report, check_samples, normalise_gold
from app.services.rollout_plan import RolloutPlan, kept_tokens, plan
from app.services.runs import LOCAL_USER, answer_of, save_result
from app.services.runtime import Runtime
from app.store.records import StoredRun, StoredSample, StoredStep
from app.store.repository import Store


@dataclass(frozen=True)
class BranchSource:
    """The stored trace a branch continues: its run, the sample (0-based ``index``) and its current steps."""

    run: StoredRun
    sample: StoredSample

    @property
    def steps(self) -> list[StoredStep]:
        return self.sample.steps

    @property
    def messages(self) -> list[dict[str, str]]:
        return list(self.run.messages) or [{"role": "user", "content": self.run.prompt}]


def load_source(rt: Runtime, run_id: int, sample_index: int = 0) -> BranchSource:
    """The run's sample, or a message naming what is wrong: no such run (``NotFound``), no such sample, no steps."""
    return source_in(rt.db, run_id, sample_index)


def source_in(store: Store, run_id: int, sample_index: int = 0) -> BranchSource:
    """``load_source`` on a bare store: the CLI checks the address with it before the slow model load."""
    run = store.get_run(run_id)
    if not run.samples:
        raise InvalidInput(f"run {run_id} has no samples (it failed before generating); pick another run")
    if not 0 <= sample_index < len(run.samples):
        raise InvalidInput(
            f"sample {sample_index + 1} does not exist: run {run_id} has samples 1 to {len(run.samples)}; "
            "pick one of those"
        )
    sample = run.samples[sample_index]
    if not sample.steps:
        raise InvalidInput(
            f"sample {sample_index + 1} of run {run_id} has no steps (empty thinking and answer), so there is "
            "nothing to branch from; pick a sample with a trace"
        )
    return BranchSource(run=run, sample=sample)


def check_rollouts(n: int, max_samples: int) -> int:
    """``n`` rollouts if 1 <= n <= the server's cap, else a message saying how to get there."""
    if n < 1:
        raise InvalidInput(f"rollouts={n} must be at least 1")
    return check_samples(n, max_samples)


def check_step(source: BranchSource, step: int) -> int:
    if not 0 <= step < len(source.steps):
        raise InvalidInput(
            f"step {step + 1} does not exist: sample {source.sample.index + 1} of run {source.run.run_id} has "
            f"steps 1 to {len(source.steps)}; pick one of those"
        )
    return step


def parse_steps(spec: str | Sequence[int] | None, source: BranchSource) -> list[int]:
    """``"all"`` (or None) = every step; ``"1,3,5"`` = those steps, 1-based; a list = 0-based indexes. Sorted."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "all")):
        return list(range(len(source.steps)))
    if isinstance(spec, str):
        try:
            wanted = [int(part) - 1 for part in spec.split(",") if part.strip()]
        except ValueError:
            raise InvalidInput(
                f"steps={spec!r} is not 'all' or a comma-separated list of step numbers like 1,3,5"
            ) from None
    else:
        wanted = list(spec)
    if not wanted:
        raise InvalidInput("no steps chosen; pass 'all' or step numbers like 1,3,5")
    return sorted({check_step(source, k) for k in wanted})


def prefix_at(source: BranchSource, step: int) -> TracePrefix:
    """The trace up to the end of step ``step`` (-1: nothing, the prompt alone), keeping the whitespace that
    followed the step (a newline at the very end), so the continuation starts where the model's next token went."""
    if step < 0:
        return TracePrefix()
    kept = source.steps[check_step(source, step)]
    text = source.sample.thinking if kept.source == "thinking" else source.sample.answer
    rest = text[kept.end :]
    gap = rest[: len(rest) - len(rest.lstrip())] or "\n"
    if kept.source == "thinking":
        return TracePrefix(thinking=text[: kept.end] + gap)
    return TracePrefix(thinking=source.sample.thinking, answer=text[: kept.end] + gap)


def rollout_settings(
    source: BranchSource, n: int, seed: int | None = None, budget: int | None = None
) -> GenerationSettings:
    """The parent's budget and sampling rules for ``n`` rollouts (greedy becomes a sampling temperature);
    ``budget``: their thinking budget instead (the thinking kept from the parent counts against it)."""
    settings = source.run.settings.for_samples(n)
    if budget is not None:
        _, low = settings.resolved_budget()
        settings = settings.with_(effort=None, max_thinking_tokens=budget, min_thinking_tokens=min(low, budget))
    return settings.with_(seed=seed) if seed is not None else settings


def plan_rollouts(source: BranchSource, step: int, n: int, budget: int | None = None) -> RolloutPlan:
    """The cost of ``n`` rollouts from the end of ``step`` (see :func:`app.services.rollout_plan.plan`)."""
    kept = len(prefix_at(source, check_step(source, step)).thinking.rstrip())
    thinking = kept_tokens(source.sample.thinking_tokens, source.sample.thinking, kept)
    return plan(n, thinking, budget, source.run.settings.max_answer_tokens)


def _point_result(source: BranchSource, settings: GenerationSettings, samples: list[SampleResult], rt: Runtime):
    for sample in samples:
        sample.extracted_answer = answer_of(sample)
    return GenerationResult(
        model=rt.loaded.name,
        format=rt.loaded.format.name,
        settings=settings,
        samples=samples,
        prompt=source.run.prompt,
        messages=source.messages,
        seconds=max((s.seconds for s in samples), default=0.0),
        error=next((s.error for s in samples if s.error), None),
        precision=rt.loaded.precision,
    )


def _label(source: BranchSource, step: int) -> str:
    where = "the prompt" if step < 0 else f"step {step + 1}"
    return f"branch of run {source.run.run_id} · sample {source.sample.index + 1} · from {where}"


def _save_point(
    rt: Runtime,
    source: BranchSource,
    step: int,
    result: GenerationResult,
    gold: str | None,
    kind: BranchKind,
    user: str | None = LOCAL_USER,
):
    """Save one point's rollouts as a branch run, created by ``user`` (who may then delete it)."""
    link = BranchLink(source.run.run_id, source.sample.index, step, kind)
    return save_result(rt, result, kind="consistency", gold=gold, label=_label(source, step), branch=link, user=user)


# --- resample from one step ------------------------------------------------------------------------


def resample(
    rt: Runtime,
    run_id: int,
    sample_index: int,
    step: int,
    n: int,
    *,
    gold: str | None = None,
    seed: int | None = None,
    cancel: CancelToken | None = None,
    progress: Callable[[Progress], None] | None = None,
    user: str | None = LOCAL_USER,
    budget: int | None = None,
) -> ConsistencyReport:
    """N continuations from the end of ``step`` in one batched generate, voted as in Self-consistency and saved
    as one run linked to its parent (kind ``resample``). ``gold`` defaults to the parent run's; ``budget`` (max
    thinking tokens per rollout) to the thinking kept plus an allowance (:func:`plan_rollouts`).
    Only rollouts that finished an answer count in the vote (``answer_of``)."""
    source = load_source(rt, run_id, sample_index)
    n = check_rollouts(n, rt.settings.max_samples)
    settings = rollout_settings(source, n, seed, plan_rollouts(source, step, n, budget).budget)
    gold = normalise_gold(gold) if gold is not None else source.run.gold
    batch = _roll(rt, source, [prefix_at(source, step)], settings, n, cancel, progress)
    result = _point_result(source, settings, batch.samples[0], rt)
    run = _save_point(rt, source, step, result, gold, "resample", user)
    return build_report(result, run, gold)


def _roll(rt, source, prefixes, settings, n, cancel, progress) -> RolloutBatch:
    batch = None
    for item in rt.engine.stream_rollouts(source.messages, prefixes, settings, n, cancel):
        if isinstance(item, RolloutBatch):
            batch = item
        elif progress is not None:
            progress(item)
    assert batch is not None
    return batch


# --- the step-credit curve ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CreditProgress:
    """``done`` of ``total`` points rolled out; ``tokens`` decoded so far in the current batch."""

    done: int
    total: int
    tokens: int = 0


@dataclass
class CreditReport:
    """The curve over the chosen steps of one sample, with the branch runs that hold every rollout."""

    run_id: int
    sample_index: int
    rollouts: int
    steps: list[int]  # the chosen steps, 0-based
    step_texts: dict[int, str]
    curve: CreditCurve
    branch_runs: dict[int, int | None] = field(default_factory=dict)  # {point: run id}; None = not saved
    status: str = "done"  # done | cancelled | error
    error: str | None = None
    results: dict[int, GenerationResult] = field(default_factory=dict, repr=False)

    @property
    def share_key(self) -> str:
        return "share_gold" if self.curve.target_kind == "gold" else "share_majority"

    def to_json(self) -> dict[str, Any]:
        """The CLI's ``branch --json`` shape: steps 1-based, answers as {answer: count}."""
        steps = []
        for k in self.steps:
            point = self.curve.point(k)
            if point is None:
                continue
            steps.append(
                {
                    "index": k + 1,
                    "text": self.step_texts[k],
                    "answers": point.counts,
                    self.share_key: point.share,
                    "importance": point.importance,
                    "anchor": point.anchor,
                    "branch_run_id": self.branch_runs.get(k),
                }
            )
        base = self.curve.point(-1)
        return {
            "run_id": self.run_id,
            "sample": self.sample_index + 1,
            "rollouts": self.rollouts,
            "target": self.curve.target,
            "target_kind": self.curve.target_kind,
            "status": self.status,
            "error": self.error,
            "steps": steps,
            "from_prompt": None if base is None else {"answers": base.counts, self.share_key: base.share},
            "anchors": [k + 1 for k in self.curve.anchors if k >= 0],
        }


def stream_credit(
    rt: Runtime,
    run_id: int,
    sample_index: int,
    n: int,
    *,
    steps: str | Sequence[int] | None = None,
    gold: str | None = None,
    seed: int | None = None,
    cancel: CancelToken | None = None,
    with_importance: bool = True,
    save: bool = True,
    kind: BranchKind = "credit",
    user: str | None = LOCAL_USER,
) -> Iterator[CreditProgress | CreditReport]:
    """Roll out N continuations from after each chosen step, yield progress, then the :class:`CreditReport`.

    With ``with_importance`` the point before each chosen step is rolled out too (the step resampled in its
    place; -1 = from the prompt), so every chosen step gets its importance. All rollouts are batched: as many
    points per generate as fit in ``max_samples`` rows. Each point's rollouts are saved as a branch run as soon
    as its batch finishes (``save=False``: kept in ``report.results`` for the caller to save). A cancel stops
    at once and reports the points that finished (``status="cancelled"``).
    """
    source = load_source(rt, run_id, sample_index)
    chosen = parse_steps(steps, source)
    n = check_rollouts(n, rt.settings.max_samples)
    gold = normalise_gold(gold) if gold is not None else source.run.gold
    settings = rollout_settings(source, n, seed)
    points = sorted(set(chosen) | ({k - 1 for k in chosen} if with_importance else set()))
    per_batch = max(1, rt.settings.max_samples // n)
    cancel = cancel or CancelToken()
    answers: dict[int, list[str | None]] = {}
    results: dict[int, GenerationResult] = {}
    runs: dict[int, int | None] = {}
    status, error = "done", None
    yield CreditProgress(0, len(points))
    for start in range(0, len(points), per_batch):
        chunk = points[start : start + per_batch]
        batch = None
        prefixes = [prefix_at(source, k) for k in chunk]
        for item in rt.engine.stream_rollouts(source.messages, prefixes, settings, n, cancel):
            if isinstance(item, RolloutBatch):
                batch = item
            else:
                yield CreditProgress(len(answers), len(points), item.tokens)
        assert batch is not None
        if cancel.cancelled or batch.error:
            status, error = ("cancelled", None) if cancel.cancelled and not batch.error else ("error", batch.error)
            break
        for k, samples in zip(chunk, batch.samples, strict=True):
            results[k] = _point_result(source, settings, samples, rt)
            answers[k] = [s.extracted_answer for s in samples]
            runs[k] = _save_point(rt, source, k, results[k], gold, kind, user) if save else None
        yield CreditProgress(len(answers), len(points))
    yield CreditReport(
        run_id=run_id,
        sample_index=sample_index,
        rollouts=n,
        steps=[k for k in chosen if k in answers],
        step_texts={k: source.steps[k].text for k in chosen},
        curve=credit_curve(answers, gold),
        branch_runs=runs,
        status=status,
        error=error,
        results=results,
    )


def step_credit(rt: Runtime, run_id: int, sample_index: int, n: int, **kwargs: Any) -> CreditReport:
    """:func:`stream_credit` run to the end (``progress=`` gets each :class:`CreditProgress`)."""
    progress = kwargs.pop("progress", None)
    report = None
    for item in stream_credit(rt, run_id, sample_index, n, **kwargs):
        if isinstance(item, CreditReport):
            report = item
        elif progress is not None:
            progress(item)
    assert report is not None
    return report


def save_point(
    rt: Runtime,
    report: CreditReport,
    step: int,
    gold: str | None,
    kind: BranchKind = "credit",
    user: str | None = LOCAL_USER,
) -> int:
    """Save one point of a report made with ``save=False`` (auto-labelling saves only once labels are kept)."""
    source = load_source(rt, report.run_id, report.sample_index)
    run = _save_point(rt, source, step, report.results[step], gold, kind, user)
    report.branch_runs[step] = run
    return run


def sample_address(rt: Runtime, sample_id: int) -> tuple[int, int]:
    """(run id, 0-based sample index) of a stored sample (the Annotate view knows samples by id)."""
    sample = rt.db.get_sample(sample_id)
    return sample.run_id, sample.index
