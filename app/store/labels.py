"""Annotators, step labels and whole-sample verdicts: writing them and reading their current view.

Both labels and verdicts are append-only; see ``queries.py`` for what "current" means. Nothing is updated
or deleted here, so every click an annotator made stays in ``label_history``.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from app.store.base import StoreBase, check_annotator_name
from app.store.convert import label_record
from app.store.errors import NotFound, StoreError
from app.store.models import Annotator, Run, Sample, SampleVerdict, Step, StepLabel
from app.store.queries import current_label_ids, current_verdict_ids
from app.store.records import LabelRecord


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


class LabelsMixin(StoreBase):
    def ensure_annotator(self, name: str) -> None:
        """Register an annotator (idempotent). Raises ``StoreError`` if the name is empty or too long."""
        with self._write() as session:
            self._annotator_id(session, name)

    def list_annotators(self) -> list[str]:
        with self._read() as session:
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
        with self._write() as session:
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
                annotator_id=self._annotator_id(session, annotator),
                rating=int(rating),
                comment=comment,
                first_error=first_error,
            )
            session.add(label)
            session.flush()
            return label.id

    def current_labels(self, sample_id: int, annotator: str | None = None) -> dict[int, LabelRecord]:
        """{step_id: current label} over the sample's active steps, for one annotator.

        With ``annotator=None`` each step maps to the newest current label by anyone (the latest opinion);
        use ``step_ratings_by_annotator`` to see everyone's side by side.
        """
        with self._read() as session:
            where = [Step.sample_id == sample_id]
            if annotator is not None:
                annotator_id = self._find_annotator_id(session, annotator)
                if annotator_id is None:
                    return {}
                where.append(StepLabel.annotator_id == annotator_id)
            rows = current_label_rows(session, *where)
        newest: dict[int, LabelRecord] = {}
        for label, step, name in sorted(rows, key=lambda row: row[0].id):
            newest[step.id] = label_record(label, step, name)
        return newest

    def label_history(self, step_id: int) -> list[LabelRecord]:
        """Every label ever given to the step, by anyone, oldest first (also for replaced steps)."""
        with self._read() as session:
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
        with self._read() as session:
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
        with self._write() as session:
            if session.get(Sample, sample_id) is None:
                raise NotFound(f"cannot judge sample {sample_id}: it does not exist (its run may have been deleted)")
            verdict = SampleVerdict(
                sample_id=sample_id, annotator_id=self._annotator_id(session, annotator), correct=correct
            )
            session.add(verdict)
            session.flush()
            return verdict.id

    def current_verdict(self, sample_id: int, annotator: str) -> bool | None:
        """The annotator's newest verdict on the sample, or None if none (or withdrawn)."""
        with self._read() as session:
            annotator_id = self._find_annotator_id(session, annotator)
            if annotator_id is None:
                return None
            return session.scalar(
                select(SampleVerdict.correct).where(
                    SampleVerdict.id.in_(
                        current_verdict_ids(
                            SampleVerdict.sample_id == sample_id, SampleVerdict.annotator_id == annotator_id
                        )
                    )
                )
            )
