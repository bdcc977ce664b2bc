"""PRM rows by label source: human labels, automatic (``auto:mc``) labels, or both, with provenance columns.

Owns the row rules of the ``prm`` export's ``source`` (human|auto|both) and ``soft`` options (declared, and
checked, with the format in ``app.export.dataset_formats``):

- human rows follow :func:`app.export.rows.prm_row` (first error stops the row, the neutral policy);
- auto rows keep EVERY step with its own label, as Math-Shepherd's data does: each label is an independent
  Monte-Carlo estimate from rollouts after that step, so there is no "nothing after the first error is
  trusted" cut (that is a convention of people reading a trace). A sample whose steps changed after it was
  labelled (a step without an auto label) is skipped;
- ``soft``: labels are floats -- the share of rollouts reaching the target for auto labels, 1.0 / 0.0 for
  human ones (after the neutral policy);
- with ``source`` auto or both each row says where its labels came from: ``label_source`` (``human`` or
  ``auto:mc``), ``annotator`` (the person; None for auto), ``auto_rollouts`` (N) and ``auto_target`` (the
  answer rollouts had to reach; None for human rows; their Arrow types are in ``app.export.writers``). Human-only
  exports keep TRL's three columns;
- every row ends with the branch lineage columns of its sample's run (``app.export.lineage``).

Pure: domain records in, dict rows out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import partial
from typing import Any

from app.export.lineage import Lineages
from app.export.rows import RowBatch, build_batch, prm_rows, sorted_unique, step_label_balance
from app.labelled_data import AutoLabelledSample, LabelledSample

#: Whose step labels a ``prm`` export writes (its ``source`` option).
LABEL_SOURCES: tuple[str, ...] = ("human", "auto", "both")
SKIP_STEPS_CHANGED = "steps changed after auto-labelling (a step has no auto label)"


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


def auto_prm_rows(
    samples: Sequence[AutoLabelledSample], soft: bool = False, lineage: Lineages | None = None
) -> RowBatch:
    """PRM rows from automatic labels, each with its provenance and its sample's branch lineage; the batch
    names the label source (``auto:mc``) where a human batch names its annotators."""
    make_row = partial(auto_prm_row, soft=soft)
    return build_batch("prm", samples, make_row, lineage, step_label_balance, who=lambda sample: sample.source)


def prm_rows_by_source(
    human: Sequence[LabelledSample],
    auto: Sequence[AutoLabelledSample],
    *,
    source: str,
    neutral: str = "true",
    soft: bool = False,
    lineage: Lineages | None = None,
) -> RowBatch:
    """PRM rows from ``human`` and/or ``auto`` records as ``source`` (one of :data:`LABEL_SOURCES`) asks, human
    rows first, each with its sample's branch lineage; label balance counts true/false (a soft label counts as
    true when above 0, Math-Shepherd's hard rule)."""
    parts: list[RowBatch] = []
    if source in ("human", "both"):
        parts.append(prm_rows(human, neutral, lineage, soft=soft, provenance=source != "human"))
    if source in ("auto", "both"):
        parts.append(auto_prm_rows(auto, soft, lineage))
    rows = [row for part in parts for row in part.rows]
    skipped: Counter[str] = Counter()
    for part in parts:
        skipped.update(part.skip_reasons)
    return RowBatch(
        format="prm",
        rows=rows,
        skip_reasons=dict(skipped),
        label_balance=step_label_balance(rows),
        models=sorted_unique(m for part in parts for m in part.models),
        annotators=sorted_unique(a for part in parts for a in part.annotators),
        neutral=neutral,
    )
