"""PRM800K-like rows: one line per labelled sample, keeping everything the annotator did (lossless).

Ratings stay -1/0/+1, with each step's comment and time and the sample's first error; the mapping from
PRM800K's own layout is in :func:`prm800k_row`. Pure, like ``app.export.rows`` whose helpers it shares.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from app.export.lineage import Lineages
from app.export.rows import SKIP_NO_LABELS, RowBatch, build_batch, ordered_steps, ratings_by_step
from app.labelled_data import LabelledSample, first_error


def _timestamp(moment: datetime) -> str:
    """ISO 8601 with microseconds, always: a fixed width keeps the JSONL column a string column.

    (datasets' JSON reader turns "2025-03-01T12:00:00" into a timestamp but leaves
    "...12:00:00.123456" a string, so mixed precision would give one column two types.)
    """
    return moment.isoformat(timespec="microseconds")


def prm800k_row(sample: LabelledSample) -> dict[str, Any] | str:
    """One PRM800K-like line per labelled sample, keeping everything the annotator did.

    Mapping from PRM800K (``{"labeler", "timestamp", "question": {"problem"}, "label": {"steps":
    [{"completions": [{"text", "rating", "flagged"}], ...}], "total_time", "finish_reason"}}``):
    ``labeler`` -> ``annotator``; ``question.problem`` -> ``prompt``; each step has exactly one
    completion here, so ``label.steps[i].completions[0]`` is flattened to ``steps[i]`` with its
    ``text`` and ``rating`` (-1/0/+1, kept as is) plus our ``index``, ``source`` (thinking/answer),
    ``comment`` and ``labelled_at``; ``timestamp``/``total_time`` -> ``labelled_at_start`` and
    ``labelled_at_end`` (first and last rating time, ISO 8601 with microseconds). Steps run up to the last rated
    one; an unrated step before that keeps ``rating: null`` (nothing is dropped here).
    ``first_error`` marks the sample's first error (:func:`~app.labelled_data.first_error`). ``finish_reason`` is ``found_error`` when a step is
    rated -1, ``solution`` when every step is rated and none is -1, else ``partial`` (PRM800K's
    ``give_up``/``bad_problem`` have no counterpart here).
    """
    ratings = ratings_by_step(sample)
    steps = ordered_steps(sample)
    rated_positions = [i for i, s in enumerate(steps) if s.index in ratings]
    if not rated_positions:
        return SKIP_NO_LABELS
    included = steps[: rated_positions[-1] + 1]
    wrong = first_error(ratings[s.index] for s in included if s.index in ratings)
    out_steps = []
    for step in included:
        rating = ratings.get(step.index)
        out_steps.append(
            {
                "index": step.index,
                "text": step.text,
                "source": step.source,
                "rating": rating.rating if rating else None,
                "comment": rating.comment if rating else "",
                "first_error": step.index == wrong,
                "labelled_at": _timestamp(rating.created_at) if rating else None,
            }
        )
    if wrong is not None:
        finish_reason = "found_error"
    elif len(ratings.keys() & {s.index for s in steps}) == len(steps):
        finish_reason = "solution"
    else:
        finish_reason = "partial"
    times = sorted(r.created_at for r in ratings.values())
    return {
        "prompt": sample.prompt,
        "model": sample.model,
        "annotator": sample.annotator,
        "steps": out_steps,
        "finish_reason": finish_reason,
        "labelled_at_start": _timestamp(times[0]),
        "labelled_at_end": _timestamp(times[-1]),
    }


def prm800k_rows(samples: Sequence[LabelledSample], lineage: Lineages | None = None) -> RowBatch:
    """PRM800K-like rows (plus the lineage columns); label balance counts the -1/0/+1 ratings written."""
    return build_batch("prm800k", samples, prm800k_row, lineage, _rating_balance)


def _rating_balance(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts = Counter(step["rating"] for row in rows for step in row["steps"] if step["rating"] is not None)
    return {"+1": counts[1], "0": counts[0], "-1": counts[-1]}
