"""Steps of a sample: reading the active ones, merging two neighbours, splitting one in two.

A step row's text never changes. Merge and split deactivate the old rows and insert new ones, so every label
keeps pointing at the text it was given for: labels on the replaced steps stay in their history but do not
carry over, and labels on every other step are untouched. ``index`` numbers the active steps 0..n-1.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.store.base import StoreBase
from app.store.errors import NotFound, StoreError
from app.store.models import Sample, Step
from app.store.records import StoredStep
from app.store.runs import load_active_steps


def _locked_step(session: Session, step_id: int) -> Step:
    """The step row, locked for update where the database supports it; ``NotFound`` if it is gone."""
    step = session.scalar(select(Step).where(Step.id == step_id).with_for_update())
    if step is None:
        raise NotFound(f"step {step_id} does not exist (its run may have been deleted); reload the sample")
    return step


def _require_active(step: Step, action: str) -> None:
    if not step.active:
        raise StoreError(
            f"cannot {action} step {step.id}: it was already replaced by a merge or split; reload the sample's steps"
        )


def _shift_after(session: Session, sample_id: int, after_index: int, by: int) -> None:
    """Move the active steps after ``after_index`` by ``by`` places, keeping the numbering dense."""
    session.execute(
        update(Step)
        .where(Step.sample_id == sample_id, Step.active.is_(True), Step.index > after_index)
        .values(index=Step.index + by)
    )


class StepsMixin(StoreBase):
    def steps_for_sample(self, sample_id: int) -> list[StoredStep]:
        """The sample's active steps, in order."""
        with self._read() as session:
            if session.get(Sample, sample_id) is None:
                raise NotFound(f"sample {sample_id} does not exist (its run may have been deleted)")
            return load_active_steps(session, [sample_id])[sample_id]

    def merge_steps(self, sample_id: int, step_id: int, next_step_id: int) -> int:
        """Replace a step and the one right after it by one step spanning both; return the new step's id."""
        with self._write() as session:
            first, second = _locked_step(session, step_id), _locked_step(session, next_step_id)
            for step in (first, second):
                if step.sample_id != sample_id:
                    raise StoreError(f"step {step.id} belongs to sample {step.sample_id}, not to sample {sample_id}")
                _require_active(step, "merge")
            if second.index != first.index + 1 or second.source != first.source:
                raise StoreError(
                    f"steps {first.id} (#{first.index}, {first.source}) and {second.id} (#{second.index}, "
                    f"{second.source}) are not neighbours in the same part of the trace; merge a step with the next one"
                )
            sample = session.get_one(Sample, sample_id)
            source = sample.thinking if first.source == "thinking" else sample.answer
            spans_match = (
                source[first.start : first.end] == first.text and source[second.start : second.end] == second.text
            )
            # Prefer the exact source text between the two spans; fall back to joining the texts.
            text = source[first.start : second.end] if spans_match else f"{first.text}\n{second.text}"
            first.active = second.active = False
            merged = Step(
                sample_id=sample_id,
                index=first.index,
                source=first.source,
                text=text,
                start=first.start,
                end=second.end,
            )
            session.add(merged)
            session.flush()
            _shift_after(session, sample_id, second.index, -1)
            return merged.id

    def split_step(self, step_id: int, at: int) -> tuple[int, int]:
        """Replace a step by two, cut at character ``at`` of its text; return the two new step ids.

        Whitespace around the cut is dropped from both halves (and their spans).
        """
        with self._write() as session:
            step = _locked_step(session, step_id)
            _require_active(step, "split")
            left = step.text[:at].rstrip()
            right_raw = step.text[at:]
            right = right_raw.lstrip()
            if not 0 < at < len(step.text) or not left or not right:
                raise StoreError(
                    f"cannot split step {step.id} at character {at}: both parts must keep some text; "
                    f"pick a position between 1 and {len(step.text) - 1} that is not at the edge of the text"
                )
            right_start = min(step.start + at + len(right_raw) - len(right), step.end)
            step.active = False
            _shift_after(session, step.sample_id, step.index, 1)
            common = {"sample_id": step.sample_id, "source": step.source}
            head = Step(index=step.index, text=left, start=step.start, end=step.start + len(left), **common)
            tail = Step(index=step.index + 1, text=right, start=right_start, end=step.end, **common)
            session.add_all([head, tail])
            session.flush()
            return head.id, tail.id
