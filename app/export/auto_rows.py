"""PRM rows by label source: human labels, automatic (``auto:mc``) labels, or both, with provenance columns.

Owns the ``--source human|auto|both`` and ``--soft`` rules of the ``prm`` export:

- human rows follow :func:`app.export.rows.prm_row` (first error stops the row, the neutral policy);
- auto rows keep EVERY step with its own label, as Math-Shepherd's data does: each label is an independent
  Monte-Carlo estimate from rollouts after that step, so there is no "nothing after the first error is
  trusted" cut (that is a convention of people reading a trace). A sample whose steps changed after it was
  labelled (a step without an auto label) is skipped;
- ``soft``: labels are floats -- the share of rollouts reaching the target for auto labels, 1.0 / 0.0 for
  human ones (after the neutral policy);
- with ``source`` auto or both each row says where its labels came from: ``label_source`` (``human`` or
  ``auto:mc``), ``annotator`` (the person; None for auto), ``auto_rollouts`` (N) and ``auto_target`` (the
  answer rollouts had to reach; None for human rows). Human-only exports keep TRL's three columns;
- every row ends with the branch lineage columns of its sample's run (``app.export.lineage``).

Pure: domain records in, dict rows out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from app.domain import AutoLabelledSample, LabelledSample
from app.export.lineage import Lineages, arrow_fields, lineage_columns
from app.export.rows import ExportError, Neutral, RowBatch, prm_row

LABEL_SOURCES: tuple[str, ...] = ("human", "auto", "both")
SKIP_STEPS_CHANGED = "steps changed after auto-labelling (a step has no auto label)"
PROVENANCE_FIELDS = [
    ("label_source", pa.string()),
    ("annotator", pa.string()),
    ("auto_rollouts", pa.int64()),
    ("auto_target", pa.string()),
]


def check_source(fmt: str, source: str, soft: bool) -> None:
    """Raise :class:`ExportError` for a source or ``soft`` the format can't take, naming the fix."""
    if source not in LABEL_SOURCES:
        raise ExportError(f"source={source!r} is not one of {', '.join(LABEL_SOURCES)}")
    if source != "human" and fmt != "prm":
        raise ExportError(
            f"source={source!r} works with format prm only (automatic labels are step labels); use --format prm"
        )
    if soft and fmt != "prm":
        raise ExportError("--soft (float step labels) works with format prm only; use --format prm")


def auto_prm_row(sample: AutoLabelledSample, soft: bool = False) -> dict[str, Any] | str:
    """One row with every step and its auto label, or the skip reason."""
    by_step = {label.step_index: label for label in sample.labels}
    steps = sorted(sample.steps, key=lambda s: s.index)
    if not steps or any(s.index not in by_step for s in steps):
        return SKIP_STEPS_CHANGED
    labels = [by_step[s.index].soft if soft else by_step[s.index].hard for s in steps]
    return {
        "prompt": sample.prompt,
        "completions": [s.text.strip() for s in steps],
        "labels": [float(v) for v in labels] if soft else [bool(v) for v in labels],
        "label_source": sample.source,
        "annotator": None,
        "auto_rollouts": sample.rollouts,
        "auto_target": sample.target,
    }


def prm_rows_by_source(
    human: Sequence[LabelledSample],
    auto: Sequence[AutoLabelledSample],
    *,
    source: str,
    neutral: Neutral = "true",
    soft: bool = False,
    lineage: Lineages | None = None,
) -> RowBatch:
    """PRM rows from ``human`` and/or ``auto`` records as ``source`` asks, each with its sample's branch lineage;
    label balance counts true/false (a soft label counts as true when above 0, Math-Shepherd's hard rule)."""
    check_source("prm", source, soft)
    provenance = source != "human"
    rows: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    models: set[str] = set()
    annotators: set[str] = set()
    if source in ("human", "both"):
        for sample in human:
            row = prm_row(sample, neutral)
            if isinstance(row, str):
                skipped[row] += 1
                continue
            if soft:
                row["labels"] = [1.0 if label else 0.0 for label in row["labels"]]
            if provenance:
                row.update(label_source="human", annotator=sample.annotator, auto_rollouts=None, auto_target=None)
            rows.append(row | lineage_columns(lineage, sample.run_id))
            models.add(sample.model)
            annotators.add(sample.annotator)
    if source in ("auto", "both"):
        for auto_sample in auto:
            row = auto_prm_row(auto_sample, soft)
            if isinstance(row, str):
                skipped[row] += 1
                continue
            rows.append(row | lineage_columns(lineage, auto_sample.run_id))
            models.add(auto_sample.model)
            annotators.add(auto_sample.source)
    n_true = sum(1 for row in rows for label in row["labels"] if label > 0)
    n_all = sum(len(row["labels"]) for row in rows)
    return RowBatch(
        format="prm",
        rows=rows,
        skip_reasons=dict(skipped),
        label_balance={"true": n_true, "false": n_all - n_true},
        models=sorted(m for m in models if m),
        annotators=sorted(a for a in annotators if a),
        neutral=neutral,
    )


def prm_schema(soft: bool, provenance: bool) -> pa.Schema:
    """The Parquet schema of a prm export with float labels and/or provenance columns (lineage last)."""
    fields = [
        ("prompt", pa.string()),
        ("completions", pa.list_(pa.string())),
        ("labels", pa.list_(pa.float64() if soft else pa.bool_())),
    ]
    return pa.schema(fields + (PROVENANCE_FIELDS if provenance else []) + arrow_fields("prm"))
