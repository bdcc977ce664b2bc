"""Export queries: what was labelled, as the domain's ``LabelledSample`` and ``PreferencePair``.

The export layer turns these into dataset rows; this module only decides which rows exist. All three take the
same filters: ``annotator`` (by name), ``model`` (the run's model id) and ``since`` (only what was labelled,
judged or preferred at or after that time; a naive datetime is taken as UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session, aliased

from app.domain import LabelledSample, PreferencePair, StepRating
from app.store.base import StoreBase
from app.store.convert import label_record
from app.store.labels import current_label_rows
from app.store.models import Annotator, Preference, Prompt, Run, Sample, SampleVerdict, Step, StepLabel, to_utc
from app.store.queries import current_verdict_ids
from app.store.runs import load_active_steps


@dataclass
class _Pair:
    """What is known about one (sample, annotator) before it becomes a ``LabelledSample``."""

    ratings: list[StepRating]
    verdict: bool | None = None
    created_at: datetime | None = None


class ExportsMixin(StoreBase):
    def labelled_samples(
        self, *, annotator: str | None = None, model: str | None = None, since: datetime | None = None
    ) -> list[LabelledSample]:
        """One per (sample, annotator) with at least one current step label; ratings in step order.

        ``created_at`` is the time of that annotator's newest current label on the sample; ``since`` keeps the
        pairs whose newest label is at or after it. ``marked_correct`` is the annotator's current verdict.
        """
        since = to_utc(since) if since is not None else None
        with self._read() as session:
            where: list[ColumnElement[bool]] = []
            if annotator is not None:
                where.append(
                    StepLabel.annotator_id.in_(select(Annotator.id).where(Annotator.name == annotator.strip()))
                )
            if model is not None:
                where.append(Step.sample_id.in_(select(Sample.id).join(Run).where(Run.model == model)))
            pairs: dict[tuple[int, str], _Pair] = {}
            for label, step, name in current_label_rows(session, *where):
                pair = pairs.setdefault((step.sample_id, name), _Pair(ratings=[]))
                pair.ratings.append(label_record(label, step, name).to_rating())
                pair.created_at = max(filter(None, [pair.created_at, label.created_at]))
            if since is not None:
                pairs = {key: p for key, p in pairs.items() if p.created_at and p.created_at >= since}
            for (sample_id, name), verdict in _current_verdicts(session, {s for s, _ in pairs}).items():
                if (sample_id, name) in pairs:
                    pairs[(sample_id, name)].verdict = verdict[0]
            return _labelled(session, pairs)

    def verdict_samples(
        self, *, annotator: str | None = None, model: str | None = None, since: datetime | None = None
    ) -> list[LabelledSample]:
        """One per (sample, annotator) whose current verdict is correct or incorrect, step labels or not (SFT/KTO).

        ``created_at`` and ``since`` refer to the verdict's time; ``ratings`` holds that annotator's current
        step labels, possibly none.
        """
        since = to_utc(since) if since is not None else None
        with self._read() as session:
            where: list[ColumnElement[bool]] = []
            if model is not None:
                where.append(SampleVerdict.sample_id.in_(select(Sample.id).join(Run).where(Run.model == model)))
            pairs: dict[tuple[int, str], _Pair] = {}
            for (sample_id, name), (correct, created_at) in _current_verdicts(session, None, *where).items():
                if correct is None or (annotator is not None and name != annotator.strip()):
                    continue
                if since is not None and created_at < since:
                    continue
                pairs[(sample_id, name)] = _Pair(ratings=[], verdict=correct, created_at=created_at)
            if pairs:
                sample_ids = {s for s, _ in pairs}
                for label, step, name in current_label_rows(session, Step.sample_id.in_(sample_ids)):
                    if (step.sample_id, name) in pairs:
                        pairs[(step.sample_id, name)].ratings.append(label_record(label, step, name).to_rating())
            return _labelled(session, pairs)

    def preference_pairs(
        self, *, annotator: str | None = None, model: str | None = None, since: datetime | None = None
    ) -> list[PreferencePair]:
        """Every recorded preference, oldest first. ``model`` matches either side; a pair across two models
        reports ``model`` as ``"<chosen model> vs <rejected model>"``."""
        since = to_utc(since) if since is not None else None
        chosen, rejected = aliased(Sample), aliased(Sample)
        chosen_run, rejected_run = aliased(Run), aliased(Run)
        stmt = (
            select(Preference, Prompt.text, Annotator.name, chosen, rejected, chosen_run.model, rejected_run.model)
            .join(Prompt, Prompt.id == Preference.prompt_id)
            .join(Annotator, Annotator.id == Preference.annotator_id)
            .join(chosen, chosen.id == Preference.chosen_sample_id)
            .join(rejected, rejected.id == Preference.rejected_sample_id)
            .join(chosen_run, chosen_run.id == chosen.run_id)
            .join(rejected_run, rejected_run.id == rejected.run_id)
            .order_by(Preference.id)
        )
        if annotator is not None:
            stmt = stmt.where(Annotator.name == annotator.strip())
        if model is not None:
            stmt = stmt.where(or_(chosen_run.model == model, rejected_run.model == model))
        if since is not None:
            stmt = stmt.where(Preference.created_at >= since)
        with self._read() as session:
            return [
                PreferencePair(
                    prompt=prompt,
                    chosen_thinking=good.thinking,
                    chosen_answer=good.answer,
                    rejected_thinking=bad.thinking,
                    rejected_answer=bad.answer,
                    annotator=name,
                    model=good_model if good_model == bad_model else f"{good_model} vs {bad_model}",
                    reason=pref.reason,
                    created_at=pref.created_at,
                    chosen_run_id=good.run_id,
                    rejected_run_id=bad.run_id,
                )
                for pref, prompt, name, good, bad, good_model, bad_model in session.execute(stmt).tuples()
            ]


def _current_verdicts(
    session: Session, sample_ids: set[int] | None, *where: ColumnElement[bool]
) -> dict[tuple[int, str], tuple[bool | None, datetime]]:
    """{(sample_id, annotator): (correct, created_at)} of current verdicts, for ``sample_ids`` (None: all)."""
    if sample_ids is not None:
        if not sample_ids:
            return {}
        where = (*where, SampleVerdict.sample_id.in_(sample_ids))
    rows = session.execute(
        select(SampleVerdict.sample_id, Annotator.name, SampleVerdict.correct, SampleVerdict.created_at)
        .join(Annotator, Annotator.id == SampleVerdict.annotator_id)
        .where(SampleVerdict.id.in_(current_verdict_ids(*where)))
    ).tuples()
    return {(sample_id, name): (correct, created_at) for sample_id, name, correct, created_at in rows}


def _labelled(session: Session, pairs: dict[tuple[int, str], _Pair]) -> list[LabelledSample]:
    """Load the samples, runs, prompts and active steps behind ``pairs`` and build the domain objects."""
    if not pairs:
        return []
    sample_ids = sorted({s for s, _ in pairs})
    samples = {
        sample.id: (sample, run, prompt)
        for sample, run, prompt in session.execute(
            select(Sample, Run, Prompt.text)
            .join(Run, Run.id == Sample.run_id)
            .join(Prompt, Prompt.id == Run.prompt_id)
            .where(Sample.id.in_(sample_ids))
        ).tuples()
    }
    steps = load_active_steps(session, sample_ids)
    result = []
    for (sample_id, name), pair in sorted(pairs.items()):
        sample, run, prompt = samples[sample_id]
        result.append(
            LabelledSample(
                sample_id=sample_id,
                run_id=run.id,
                prompt=prompt,
                thinking=sample.thinking,
                answer=sample.answer,
                steps=[step.to_step() for step in steps[sample_id]],
                ratings=sorted(pair.ratings, key=lambda rating: rating.step_index),
                annotator=name,
                model=run.model,
                marked_correct=pair.verdict,
                created_at=pair.created_at,
            )
        )
    return result
