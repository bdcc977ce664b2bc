"""ORM rows -> records (``records.py``) for runs, samples, steps, labels, preferences and branches.

Most record fields are the row's column of the same name; ``records.same_named`` copies those and takes the rest
(ids under another name, values from joined rows, converted values) as keyword arguments, so each converter
below names only what differs. (Sweeps, probes and the label queue call ``same_named`` where they query.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.domain import GenerationSettings, TokenTrace, sample_columns
from app.store import models
from app.store.records import (
    AutoLabelRecord,
    BranchInfo,
    LabelRecord,
    PreferenceRecord,
    RunSummary,
    StoredRun,
    StoredSample,
    StoredStep,
    same_named,
)


def step_record(row: models.Step) -> StoredStep:
    return same_named(StoredStep, row, step_id=row.id)


def sample_record(row: models.Sample, steps: list[StoredStep], tokens: TokenTrace | None = None) -> StoredSample:
    """The stored sample: every ``SampleResult`` column by name, plus its ids, active steps and token data."""
    values = {name: getattr(row, name) for name in sample_columns()}
    return StoredSample(sample_id=row.id, run_id=row.run_id, steps=steps, tokens=tokens, **values)


def run_record(row: models.Run, samples: list[StoredSample]) -> StoredRun:
    return same_named(
        StoredRun,
        row,
        run_id=row.id,
        prompt=row.prompt.text,
        status=row.lifecycle or row.status,  # "running" / "interrupted" until the run is finished
        settings=GenerationSettings.from_dict(row.settings),
        messages=list(row.messages),
        samples=samples,
        deleted=row.deleted_at is not None,
        precision=row.settings.get("precision"),
    )


def run_summary(row: models.Run, prompt_excerpt: str, samples: Sequence[Any]) -> RunSummary:
    """One History row; ``samples`` are the run's (extracted_answer, stop_reason, thinking_tokens) rows."""
    return same_named(
        RunSummary,
        row,
        run_id=row.id,
        status=row.lifecycle or row.status,
        prompt_excerpt=prompt_excerpt,
        n_samples=len(samples),
        answers=tuple(s.extracted_answer for s in samples),
        stop_reasons=tuple(s.stop_reason for s in samples),
        thinking_tokens=sum(s.thinking_tokens for s in samples),
    )


def label_record(label: models.StepLabel, step: models.Step, annotator: str) -> LabelRecord:
    return same_named(
        LabelRecord,
        label,
        label_id=label.id,
        step_id=step.id,
        step_index=step.index,
        annotator=annotator,
        step_active=step.active,
    )


def auto_label_record(label: models.AutoStepLabel, step: models.Step) -> AutoLabelRecord:
    return same_named(
        AutoLabelRecord, label, label_id=label.id, step_id=step.id, step_index=step.index, settings=dict(label.settings)
    )


def preference_record(row: models.Preference, annotator: str) -> PreferenceRecord:
    return same_named(PreferenceRecord, row, preference_id=row.id, annotator=annotator)


def branch_info(row: models.RunBranch, deleted_parent: bool = False) -> BranchInfo:
    # a deleted (hidden) parent: the branch reads as an ordinary run
    return same_named(BranchInfo, row, parent_run_id=None if deleted_parent else row.parent_run_id)
