"""Annotators, step labels and whole-sample verdicts: writing them, reading their current view, and the
export queries over them (``labelled_samples``, ``verdict_samples``).

Both labels and verdicts are append-only; see ``fragments.py`` for what "current" means. Nothing is updated
or deleted here, so every click an annotator made stays in ``label_history``. The export queries take the
filters ``annotator`` (by name), ``model`` (the run's model id) and ``since`` (only what was labelled or judged
at or after that time; a naive datetime is taken as UTC), and read a page of samples at a time (``after``,
``limit``: see ``export_pages.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.labelled_data import LabelledSample, StepRating
from app.store.checks import check_annotator_name
from app.store.convert import label_record
from app.store.errors import NotFound, StoreError
from app.store.export_pages import is_current, paged, sample_page
from app.store.fragments import current_label_ids, current_verdict_ids
from app.store.models import Annotator, Run, Sample, SampleVerdict, Step, StepLabel, to_utc
from app.store.progress import refresh_progress
from app.store.records import LabelRecord
from app.store.samples import export_sample_fields
from app.store.sessions import Repository
from app.store.shared_rows import annotator_id, find_annotator_id


def current_label_rows(session: Session, *where: ColumnElement[bool]) -> list[tuple[StepLabel, Step, str]]:
    """(label, step, annotator name) for every current label on an active step matching ``where``."""
    rows = session.execute(
        select(StepLabel, Step, Annotator.name)
        .join(Step, Step.id == StepLabel.step_id)
        .join(Annotator, Annotator.id == StepLabel.annotator_id)
        .where(StepLabel.id.in_(current_label_ids(*where)))
        .order_by(Step.sample_id, Step.index, Annotator.name)
    )
    return [(label, step, name) for label, step, name in rows.tuples()]


@dataclass
class _Pair:
    """What is known about one (sample, annotator) before it becomes a ``LabelledSample``."""

    ratings: list[StepRating]
    verdict: bool | None = None
    created_at: datetime | None = None


class Labels(Repository):
    """Step labels and verdicts by people (machine labels are ``auto_labels.py``'s)."""

    def ensure_annotator(self, name: str) -> None:
        """Register an annotator (idempotent). Raises ``StoreError`` if the name is empty or too long."""
        with self.sessions.write() as session:
            annotator_id(session, name)

    def list_annotators(self) -> list[str]:
        with self.sessions.read() as session:
            return list(session.scalars(select(Annotator.name).order_by(Annotator.name)))

    def add_label(self, step_id: int, annotator: str, rating: int, comment: str = "", first_error: bool = False) -> int:
        """Append a label and return its id; the newest label per (step, annotator) is the current one.

        ``first_error=True`` marks where the trace first goes wrong (PRM800K) and forces ``rating=-1``.
        Refused with ``StoreError`` for a rating other than -1/0/+1 and for a step that was replaced by a
        merge or split (``NotFound`` if it was deleted).
        """
        if first_error:
            rating = -1
        if rating not in (-1, 0, 1) or isinstance(rating, bool):
            raise StoreError(f"rating={rating!r} for step {step_id} is not one of -1 (wrong), 0 (neutral), +1 (good)")
        with self.sessions.write() as session:
            step = session.scalar(select(Step).where(Step.id == step_id).with_for_update())
            deleted = step is not None and session.scalar(
                select(Run.deleted_at).join(Sample, Sample.run_id == Run.id).where(Sample.id == step.sample_id)
            )
            if step is None or deleted is not None:
                raise NotFound(f"cannot label step {step_id}: it does not exist (its run may have been deleted)")
            if not step.active:
                raise StoreError(
                    f"cannot label step {step_id}: it was replaced by a merge or split; reload the sample's "
                    "steps and label the new step"
                )
            label = StepLabel(
                step_id=step_id,
                annotator_id=annotator_id(session, annotator),
                rating=int(rating),
                comment=comment,
                first_error=first_error,
            )
            session.add(label)
            session.flush()
            refresh_progress(session, [step.sample_id])
            return label.id

    def current_labels(self, sample_id: int, annotator: str | None = None) -> dict[int, LabelRecord]:
        """{step_id: current label} over the sample's active steps, for one annotator.

        With ``annotator=None`` each step maps to the newest current label by anyone (the latest opinion);
        use ``step_ratings_by_annotator`` to see everyone's side by side.
        """
        with self.sessions.read() as session:
            # By the sample's step ids, so the (step, annotator) index is used, not a walk of all the annotator's labels.
            where = [
                Step.sample_id == sample_id,
                StepLabel.step_id.in_(select(Step.id).where(Step.sample_id == sample_id)),
            ]
            if annotator is not None:
                found = find_annotator_id(session, annotator)
                if found is None:
                    return {}
                where.append(StepLabel.annotator_id == found)
            rows = current_label_rows(session, *where)
        newest: dict[int, LabelRecord] = {}
        for label, step, name in sorted(rows, key=lambda row: row[0].id):
            newest[step.id] = label_record(label, step, name)
        return newest

    def label_history(self, step_id: int) -> list[LabelRecord]:
        """Every label ever given to the step, by anyone, oldest first (also for replaced steps)."""
        with self.sessions.read() as session:
            step = session.get(Step, step_id)
            if step is None:
                raise NotFound(f"step {step_id} does not exist (its run may have been deleted)")
            rows = session.execute(
                select(StepLabel, Annotator.name)
                .join(Annotator, Annotator.id == StepLabel.annotator_id)
                .where(StepLabel.step_id == step_id)
                .order_by(StepLabel.id)
            ).tuples()
            return [label_record(label, step, name) for label, name in rows]

    def step_ratings_by_annotator(self, sample_id: int | None = None) -> dict[str, dict[int, int]]:
        """{annotator: {step_id: current rating}} over active steps (one sample, or all): agreement input."""
        with self.sessions.read() as session:
            where = [Step.sample_id == sample_id] if sample_id is not None else []
            rows = current_label_rows(session, *where)
        ratings: dict[str, dict[int, int]] = {}
        for label, step, name in rows:
            ratings.setdefault(name, {})[step.id] = label.rating
        return ratings

    # --- verdicts on whole samples ---------------------------------------------------------------------

    def set_verdict(self, sample_id: int, annotator: str, correct: bool | None) -> int:
        """Append a person's verdict on the whole sample (``None`` withdraws it); return the row id."""
        check_annotator_name(annotator)
        with self.sessions.write() as session:
            if session.get(Sample, sample_id) is None:
                raise NotFound(f"cannot judge sample {sample_id}: it does not exist (its run may have been deleted)")
            verdict = SampleVerdict(sample_id=sample_id, annotator_id=annotator_id(session, annotator), correct=correct)
            session.add(verdict)
            session.flush()
            return verdict.id

    def current_verdict(self, sample_id: int, annotator: str) -> bool | None:
        """The annotator's newest verdict on the sample, or None if none (or withdrawn)."""
        with self.sessions.read() as session:
            found = find_annotator_id(session, annotator)
            if found is None:
                return None
            return session.scalar(
                select(SampleVerdict.correct).where(
                    SampleVerdict.id.in_(
                        current_verdict_ids(SampleVerdict.sample_id == sample_id, SampleVerdict.annotator_id == found)
                    )
                )
            )

    # --- export queries (paged by sample id, see ``export_pages.py``) -----------------------------------

    @paged(lambda sample: sample.sample_id)
    def labelled_samples(
        self,
        *,
        annotator: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> list[LabelledSample]:
        """One per (sample, annotator) with at least one current step label; ratings in step order; by sample id,
        then annotator.

        ``created_at`` is the time of that annotator's newest current label on the sample; ``since`` keeps the
        pairs whose newest label is at or after it. ``marked_correct`` is the annotator's current verdict.
        ``after``/``limit``: only the samples after id ``after``, at most ``limit`` of them (each with all its
        pairs); ``limit=None`` reads every page.
        """
        since = to_utc(since) if since is not None else None
        who = _by_name(StepLabel.annotator_id, annotator)
        with self.sessions.read() as session:
            sample_ids = sample_page(session, _has_label(who, since), after=after, limit=limit, model=model)
            if not sample_ids:
                return []
            pairs: dict[tuple[int, str], _Pair] = {}
            for label, step, name in current_label_rows(session, Step.sample_id.in_(sample_ids), *who):
                pair = pairs.setdefault((step.sample_id, name), _Pair(ratings=[]))
                pair.ratings.append(label_record(label, step, name).to_rating())
                pair.created_at = max(filter(None, [pair.created_at, label.created_at]))
            if since is not None:
                pairs = {key: p for key, p in pairs.items() if p.created_at and p.created_at >= since}
            for (sample_id, name), verdict in _current_verdicts(session, set(sample_ids)).items():
                if (sample_id, name) in pairs:
                    pairs[(sample_id, name)].verdict = verdict[0]
            return _labelled(session, pairs)

    @paged(lambda sample: sample.sample_id)
    def verdict_samples(
        self,
        *,
        annotator: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> list[LabelledSample]:
        """One per (sample, annotator) whose current verdict is correct or incorrect, step labels or not (SFT/KTO);
        by sample id, then annotator.

        ``created_at`` and ``since`` refer to the verdict's time; ``ratings`` holds that annotator's current
        step labels, possibly none. ``after``/``limit`` page by sample id as in :meth:`labelled_samples`.
        """
        since = to_utc(since) if since is not None else None
        who = _by_name(SampleVerdict.annotator_id, annotator)
        with self.sessions.read() as session:
            sample_ids = sample_page(session, _has_verdict(who, since), after=after, limit=limit, model=model)
            pairs: dict[tuple[int, str], _Pair] = {}
            for (sample_id, name), (correct, created_at) in _current_verdicts(session, set(sample_ids), *who).items():
                if correct is not None and (since is None or created_at >= since):
                    pairs[(sample_id, name)] = _Pair(ratings=[], verdict=correct, created_at=created_at)
            if pairs:
                for label, step, name in current_label_rows(session, Step.sample_id.in_(sample_ids)):
                    if (step.sample_id, name) in pairs:
                        pairs[(step.sample_id, name)].ratings.append(label_record(label, step, name).to_rating())
            return _labelled(session, pairs)


def _by_name(annotator_column: InstrumentedAttribute[int], annotator: str | None) -> list[ColumnElement[bool]]:
    """The condition "by the annotator called ``annotator``" on ``annotator_column`` (none for None)."""
    if annotator is None:
        return []
    return [annotator_column.in_(select(Annotator.id).where(Annotator.name == annotator.strip()))]


def _has_label(who: list[ColumnElement[bool]], since: datetime | None) -> ColumnElement[bool]:
    """A sample has a current step label on an active step (by ``who``; given or changed at or after ``since``)."""
    where = [Step.sample_id == Sample.id, Step.active.is_(True), *who]
    if since is not None:
        where += [
            StepLabel.created_at >= since,
            is_current(StepLabel, StepLabel.id, StepLabel.step_id, StepLabel.annotator_id),
        ]
    return select(StepLabel.id).join(Step, Step.id == StepLabel.step_id).where(*where).exists()


def _has_verdict(who: list[ColumnElement[bool]], since: datetime | None) -> ColumnElement[bool]:
    """A sample has a current verdict, correct or incorrect (by ``who``; given at or after ``since``)."""
    where = [
        SampleVerdict.sample_id == Sample.id,
        SampleVerdict.correct.is_not(None),
        is_current(SampleVerdict, SampleVerdict.id, SampleVerdict.sample_id, SampleVerdict.annotator_id),
        *who,
    ]
    if since is not None:
        where.append(SampleVerdict.created_at >= since)
    return select(SampleVerdict.id).where(*where).exists()


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
    """Build the export samples behind ``pairs`` (one per (sample, annotator)), in that order."""
    if not pairs:
        return []
    shared = export_sample_fields(session, sorted({s for s, _ in pairs}))
    return [
        LabelledSample(
            **shared[sample_id],
            ratings=sorted(pair.ratings, key=lambda rating: rating.step_index),
            annotator=name,
            marked_correct=pair.verdict,
            created_at=pair.created_at,
        )
        for (sample_id, name), pair in sorted(pairs.items())
    ]
