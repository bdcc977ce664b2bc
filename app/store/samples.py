"""Samples and their steps: the rows a run's samples become, reading a sample and its active steps, merging
two neighbouring steps, splitting one in two, and the fields every exported sample shares.

A step row's text never changes. Merge and split deactivate the old rows and insert new ones, so every label
keeps pointing at the text it was given for: labels on the replaced steps stay in their history but do not
carry over, and labels on every other step are untouched. ``index`` numbers the active steps 0..n-1.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TypedDict

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.domain import GenerationResult, sample_columns
from app.domain import Step as DomainStep
from app.store.checks import check_choice, check_id
from app.store.convert import sample_record, step_record
from app.store.errors import NotFound, StoreError
from app.store.models import STEP_SOURCES, Prompt, Run, Sample, Step
from app.store.progress import refresh_progress
from app.store.records import StoredSample, StoredStep
from app.store.sessions import Repository
from app.store.tokens import load_traces


def sample_rows(result: GenerationResult, steps: list[list[DomainStep]]) -> list[Sample]:
    """ORM rows for the result's samples and their steps (``steps[i]`` for sample i, or ``[]`` for none)."""
    if steps and len(steps) != len(result.samples):
        raise StoreError(
            f"got steps for {len(steps)} samples but the result has {len(result.samples)}; "
            "pass one list of steps per sample (or [] for none)"
        )
    for sample_steps in steps:
        for step in sample_steps:
            check_choice("step source", step.source, STEP_SOURCES)
    return [
        Sample(
            **{name: getattr(s, name) for name in sample_columns()},
            steps=[
                Step(index=j, source=st.source, text=st.text, start=st.start, end=st.end)
                for j, st in enumerate(steps[i] if steps else [])
            ],
        )
        for i, s in enumerate(result.samples)
    ]


def load_active_steps(session: Session, sample_ids: list[int]) -> dict[int, list[StoredStep]]:
    """Active steps of each sample, in index order (samples without steps map to an empty list)."""
    steps: dict[int, list[StoredStep]] = defaultdict(list)
    if sample_ids:
        rows = session.scalars(
            select(Step)
            .where(Step.sample_id.in_(sample_ids), Step.active.is_(True))
            .order_by(Step.sample_id, Step.index, Step.id)
        )
        for row in rows:
            steps[row.sample_id].append(step_record(row))
    return steps


class ExportSampleFields(TypedDict):
    """The fields ``LabelledSample`` and ``AutoLabelledSample`` share (``app.labelled_data.ExportSample``'s and ``model``)."""

    sample_id: int
    run_id: int
    prompt: str
    thinking: str
    answer: str
    steps: list[DomainStep]
    model: str


def export_sample_fields(session: Session, sample_ids: list[int]) -> dict[int, ExportSampleFields]:
    """{sample_id: its shared export fields}: the sample's text, run, model, prompt and active steps."""
    steps = load_active_steps(session, sample_ids)
    rows = session.execute(
        select(Sample, Run.model, Prompt.text)
        .join(Run, Run.id == Sample.run_id)
        .join(Prompt, Prompt.id == Run.prompt_id)
        .where(Sample.id.in_(sample_ids))
    ).tuples()
    return {
        sample.id: ExportSampleFields(
            sample_id=sample.id,
            run_id=sample.run_id,
            prompt=prompt,
            thinking=sample.thinking,
            answer=sample.answer,
            steps=[step.to_step() for step in steps[sample.id]],
            model=model,
        )
        for sample, model, prompt in rows
    }


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


class Samples(Repository):
    """A stored sample and its steps (see the module docstring)."""

    def get_sample(self, sample_id: int) -> StoredSample:
        """One sample with its active steps; ``NotFound`` if there is no such sample."""
        check_id("sample", sample_id)
        with self.sessions.read() as session:
            row = session.get(Sample, sample_id)
            if row is None:
                raise NotFound(f"sample {sample_id} does not exist (its run may have been deleted)")
            trace = load_traces(session, [sample_id]).get(sample_id)
            return sample_record(row, load_active_steps(session, [sample_id])[sample_id], trace)

    def steps_for_sample(self, sample_id: int) -> list[StoredStep]:
        """The sample's active steps, in order."""
        with self.sessions.read() as session:
            if session.get(Sample, sample_id) is None:
                raise NotFound(f"sample {sample_id} does not exist (its run may have been deleted)")
            return load_active_steps(session, [sample_id])[sample_id]

    def merge_steps(self, sample_id: int, step_id: int, next_step_id: int) -> int:
        """Replace a step and the one right after it by one step spanning both; return the new step's id."""
        with self.sessions.write() as session:
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
            refresh_progress(session, [sample_id])
            return merged.id

    def split_step(self, step_id: int, at: int) -> tuple[int, int]:
        """Replace a step by two, cut at character ``at`` of its text; return the two new step ids.

        Whitespace around the cut is dropped from both halves (and their spans).
        """
        with self.sessions.write() as session:
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
            refresh_progress(session, [step.sample_id])
            return head.id, tail.id
