"""Automatic step labels (``auto_step_labels``): writing a sample's Monte-Carlo labels, their current view,
and the export query (paged by sample id, see ``export_pages.py``). Kept apart from the human labels of
``labels.py``: nothing here has an annotator, and nothing in ``labels.py`` ever reads this table, so a machine
label is never shown or exported as a person's.

Append-only like human labels: relabelling adds rows; the current label per (step, source) is the newest.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from app.labelled_data import AutoLabelledSample, AutoStepLabel
from app.store.checks import check_choice
from app.store.convert import auto_label_record
from app.store.errors import NotFound, StoreError
from app.store.export_pages import is_current, paged, sample_page
from app.store.fragments import current_auto_label_ids
from app.store.models import AUTO_MC, Sample, Step, to_utc
from app.store.models import AutoStepLabel as AutoRow
from app.store.records import AutoLabelRecord
from app.store.samples import ExportSampleFields, export_sample_fields
from app.store.sessions import Repository

TARGET_KINDS = ("gold", "majority")


def _current_rows(session: Session, *where: ColumnElement[bool]) -> list[tuple[AutoRow, Step]]:
    """(label, step) for every current automatic label on an active step matching ``where``, in step order."""
    rows = session.execute(
        select(AutoRow, Step)
        .join(Step, Step.id == AutoRow.step_id)
        .where(AutoRow.id.in_(current_auto_label_ids(*where)))
        .order_by(Step.index)
    )
    return [(label, step) for label, step in rows.tuples()]


class AutoLabels(Repository):
    """Machine step labels: storing a sample's, their current view, and the export query."""

    def add_auto_labels(
        self,
        sample_id: int,
        labels: Sequence[tuple[int, float]],
        *,
        rollouts: int,
        target: str | None,
        target_kind: str,
        settings: dict[str, Any],
        source: str = AUTO_MC,
    ) -> list[int]:
        """Store ``(step_id, soft)`` labels of one sample in one transaction (hard = soft > 0); return their ids.

        Every step must be an active step of the sample; otherwise nothing is stored.
        """
        if not source.startswith("auto:"):
            raise StoreError(f"source={source!r} must start with 'auto:' (human labels go through add_label)")
        check_choice("target_kind", target_kind, TARGET_KINDS)
        if rollouts < 1:
            raise StoreError(f"rollouts={rollouts} must be at least 1")
        for step_id, soft in labels:
            if not 0.0 <= soft <= 1.0:
                raise StoreError(f"soft label {soft} of step {step_id} is not a share between 0 and 1")
        with self.sessions.write() as session:
            if session.get(Sample, sample_id) is None:
                raise NotFound(f"sample {sample_id} does not exist (its run may have been deleted); nothing stored")
            active = set(session.scalars(select(Step.id).where(Step.sample_id == sample_id, Step.active.is_(True))))
            stale = [step_id for step_id, _ in labels if step_id not in active]
            if stale:
                raise StoreError(
                    f"steps {stale} are not current steps of sample {sample_id} (merged or split meanwhile); "
                    "run the auto-labelling again"
                )
            provenance = {"rollouts": rollouts, "target": target, "target_kind": target_kind, "settings": settings}
            rows = [
                AutoRow(step_id=step_id, source=source, soft=float(soft), hard=soft > 0, **provenance)
                for step_id, soft in labels
            ]
            session.add_all(rows)
            session.flush()
            return [row.id for row in rows]

    def current_auto_labels(self, sample_id: int, source: str = AUTO_MC) -> dict[int, AutoLabelRecord]:
        """{step_id: current automatic label} over the sample's active steps."""
        with self.sessions.read() as session:
            rows = _current_rows(session, Step.sample_id == sample_id, AutoRow.source == source)
        return {step.id: auto_label_record(label, step) for label, step in rows}

    def auto_hard_labels(self, sample_id: int | None = None, source: str = AUTO_MC) -> dict[int, bool]:
        """{step_id: current hard label} (one sample, or all): the automatic side of human-vs-auto agreement."""
        with self.sessions.read() as session:
            where = [AutoRow.source == source] + ([Step.sample_id == sample_id] if sample_id is not None else [])
            return {step.id: label.hard for label, step in _current_rows(session, *where)}

    @paged(lambda sample: sample.sample_id)
    def auto_labelled_samples(
        self,
        *,
        model: str | None = None,
        since: datetime | None = None,
        source: str = AUTO_MC,
        after: int = 0,
        limit: int | None = None,
    ) -> list[AutoLabelledSample]:
        """One per sample with current automatic labels of ``source``, by sample id; ``since`` keeps samples
        labelled at or after it (by their newest label). ``after``/``limit``: only the samples after id
        ``after``, at most ``limit`` of them (see ``export_pages.py``); ``limit=None`` reads every page."""
        since = to_utc(since) if since is not None else None
        with self.sessions.read() as session:
            sample_ids = sample_page(session, _has_auto_label(source, since), after=after, limit=limit, model=model)
            if not sample_ids:
                return []
            by_sample: dict[int, list[tuple[AutoRow, Step]]] = {}
            for label, step in _current_rows(session, Step.sample_id.in_(sample_ids), AutoRow.source == source):
                by_sample.setdefault(step.sample_id, []).append((label, step))
            if since is not None:
                by_sample = {s: rows for s, rows in by_sample.items() if max(r.created_at for r, _ in rows) >= since}
            shared = export_sample_fields(session, sorted(by_sample))
        return [_auto_labelled(shared[sample_id], rows, source) for sample_id, rows in sorted(by_sample.items())]


def _has_auto_label(source: str, since: datetime | None) -> ColumnElement[bool]:
    """A sample has a current automatic label of ``source`` on an active step (made at or after ``since``)."""
    where = [Step.sample_id == Sample.id, Step.active.is_(True), AutoRow.source == source]
    if since is not None:
        where += [AutoRow.created_at >= since, is_current(AutoRow, AutoRow.id, AutoRow.step_id, AutoRow.source)]
    return select(AutoRow.id).join(Step, Step.id == AutoRow.step_id).where(*where).exists()


def _auto_labelled(shared: ExportSampleFields, rows: list[tuple[AutoRow, Step]], source: str) -> AutoLabelledSample:
    """One export sample: its shared fields, its current labels, and the provenance of the newest label."""
    newest = max(rows, key=lambda pair: pair[0].id)[0]
    return AutoLabelledSample(
        **shared,
        labels=[AutoStepLabel(step.index, label.soft, label.hard, label.created_at) for label, step in rows],
        source=source,
        rollouts=newest.rollouts,
        target=newest.target,
        target_kind=newest.target_kind,
        created_at=newest.created_at,
    )
