"""ORM rows -> records (``records.py``). The only place that reads row attributes into dataclasses."""

from __future__ import annotations

from app.domain import GenerationSettings, TokenTrace, sample_columns
from app.store import models
from app.store.records import LabelRecord, StoredRun, StoredSample, StoredStep


def step_record(row: models.Step) -> StoredStep:
    return StoredStep(
        step_id=row.id,
        sample_id=row.sample_id,
        index=row.index,
        source=row.source,
        text=row.text,
        start=row.start,
        end=row.end,
        active=row.active,
    )


def sample_record(row: models.Sample, steps: list[StoredStep], tokens: TokenTrace | None = None) -> StoredSample:
    """The stored sample: every ``SampleResult`` column by name, plus its ids, active steps and token data."""
    values = {name: getattr(row, name) for name in sample_columns()}
    return StoredSample(sample_id=row.id, run_id=row.run_id, steps=steps, tokens=tokens, **values)


def run_record(row: models.Run, samples: list[StoredSample]) -> StoredRun:
    return StoredRun(
        run_id=row.id,
        prompt_id=row.prompt_id,
        prompt=row.prompt.text,
        kind=row.kind,
        status=row.status,
        model=row.model,
        format=row.format,
        settings=GenerationSettings.from_dict(row.settings),
        seed=row.seed,
        error=row.error,
        gold=row.gold,
        sweep_id=row.sweep_id,
        label=row.label,
        messages=list(row.messages),
        seconds=row.seconds,
        created_at=row.created_at,
        samples=samples,
        precision=row.settings.get("precision"),
    )


def label_record(label: models.StepLabel, step: models.Step, annotator: str) -> LabelRecord:
    return LabelRecord(
        label_id=label.id,
        step_id=step.id,
        step_index=step.index,
        annotator=annotator,
        rating=label.rating,
        comment=label.comment,
        first_error=label.first_error,
        created_at=label.created_at,
        step_active=step.active,
    )
