"""PRM rows by label source: auto rows keep every step, soft labels are floats, provenance columns say who."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from app.domain import Step
from app.export.auto_rows import auto_prm_row, prm_rows_by_source
from app.export.dataset_formats import check_options
from app.export.lineage import LINEAGE_COLUMNS
from app.export.rows import ExportError
from app.labelled_data import AutoLabelledSample, AutoStepLabel, LabelledSample, StepRating

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)
STEPS = [Step(0, "3 + 4 = 7.", 0, 10), Step(1, "7 * 2 = 14.", 11, 22), Step(2, "So 14.", 23, 29)]


def auto_sample(softs=(1.0, 0.5, 0.0)) -> AutoLabelledSample:
    labels = [AutoStepLabel(i, s, s > 0, NOW) for i, s in enumerate(softs)]
    return AutoLabelledSample(1, 1, "q", "t", "a", STEPS, labels, "m", "auto:mc", 4, "14", "gold", NOW)


def human_sample() -> LabelledSample:
    ratings = [StepRating(0, 1, "alice", NOW), StepRating(1, -1, "alice", NOW)]
    return LabelledSample(1, 1, "q", "t", "a", STEPS, ratings, "alice", "m")


def test_auto_rows_keep_every_step_even_after_a_false_one():
    row = auto_prm_row(auto_sample())
    assert row["labels"] == [True, True, False] and len(row["completions"]) == 3
    soft = auto_prm_row(auto_sample(), soft=True)
    assert soft["labels"] == [1.0, 0.5, 0.0]
    assert (soft["label_source"], soft["annotator"], soft["auto_rollouts"], soft["auto_target"]) == (
        "auto:mc", None, 4, "14",
    )  # fmt: skip


def test_an_auto_sample_whose_steps_changed_is_skipped():
    sample = auto_sample(softs=(1.0, 0.5))
    assert isinstance(auto_prm_row(sample), str)


def test_both_sources_give_one_row_each_with_provenance():
    batch = prm_rows_by_source([human_sample()], [auto_sample()], source="both", soft=True)
    human, auto = batch.rows
    assert human["label_source"] == "human" and human["annotator"] == "alice" and human["labels"] == [1.0, 0.0]
    assert auto["label_source"] == "auto:mc" and auto["annotator"] is None
    assert batch.label_balance == {"true": 3, "false": 2}
    only_human = prm_rows_by_source([human_sample()], [auto_sample()], source="human")
    assert list(only_human.rows[0]) == ["prompt", "completions", "labels", *LINEAGE_COLUMNS]  # TRL's, + lineage


def test_auto_labels_are_only_for_the_prm_format():
    with pytest.raises(ExportError, match=r"^source='auto' works with format prm only .*; use --format prm$"):
        check_options("kto", source="auto")
    with pytest.raises(
        ExportError, match=r"^--soft \(float step labels\) works with format prm only; use --format prm$"
    ):
        check_options("sft", soft=True)
    with pytest.raises(ExportError, match="^source='robots' is not one of human, auto, both$"):
        check_options("prm", source="robots")
    _, options = check_options("prm", source="both", soft=True)
    assert (options.source, options.soft, options.provenance) == ("both", True, True)
