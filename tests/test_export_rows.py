"""Row building on hand-made domain records: the per-format rules, no files, no database."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from export_support import build_rows

from app.domain import Step, completion_text
from app.export.card import render_card, size_category
from app.export.lineage import column_names
from app.export.prm800k import prm800k_row
from app.export.rows import SKIP_NO_LABELS, SKIP_UNLABELLED_GAP, ExportError, ExportFilters, prm_row, text_prompt
from app.labelled_data import LabelledSample, PreferencePair, StepRating

T0 = datetime(2025, 3, 1, 12, 0, 0)


def no_lineage(fmt: str) -> dict[str, None]:
    """The lineage columns of a row from an ordinary (not branch) run: all null."""
    return dict.fromkeys(column_names(fmt))


def make_sample(
    ratings: list[int | None],
    *,
    sample_id: int = 1,
    marked_correct: bool | None = None,
    annotator: str = "alice",
    model: str = "tiny/model",
    thinking: str = "Let me think.",
    answer: str = "42",
) -> LabelledSample:
    """A sample with one step per entry of ``ratings`` (None = the annotator left it unrated)."""
    steps = [Step(index=i, text=f" step {i}\n", start=0, end=0) for i in range(len(ratings))]
    rated = [
        StepRating(
            step_index=i, rating=r, annotator=annotator, created_at=T0 + timedelta(seconds=10 * i), comment=f"c{i}"
        )
        for i, r in enumerate(ratings)
        if r is not None
    ]
    return LabelledSample(
        sample_id=sample_id,
        run_id=1,
        prompt="What is 6*7?",
        thinking=thinking,
        answer=answer,
        steps=steps,
        ratings=rated,
        annotator=annotator,
        model=model,
        marked_correct=marked_correct,
    )


def make_pair(chosen_thinking: str = "think A", rejected_thinking: str = "") -> PreferencePair:
    return PreferencePair(
        prompt="What is 6*7?",
        chosen_thinking=chosen_thinking,
        chosen_answer="42",
        rejected_thinking=rejected_thinking,
        rejected_answer="41",
        annotator="bob",
        model="tiny/model",
    )


# --- the first error (one definition, shared with labelling) ------------------------------------


def test_the_first_error_is_the_marked_step_else_the_first_wrong_one():
    from app.labelled_data import first_error

    def rating(index: int, value: int, marked: bool = False) -> StepRating:
        return StepRating(step_index=index, rating=value, annotator="a", created_at=T0, first_error=marked)

    assert first_error([rating(0, 1), rating(2, -1), rating(1, -1)]) == 1  # no mark: the first -1 by position
    assert first_error([rating(0, 1), rating(1, -1), rating(3, -1, True), rating(2, -1, True)]) == 2  # earliest mark
    assert first_error([rating(0, 1), rating(1, 0)]) is None


def test_export_stops_at_the_marked_first_error_even_after_an_unmarked_wrong_step():
    sample = make_sample([1, -1, 1, -1, 1])
    ratings = sample.ratings
    marked = replace(sample, ratings=[*ratings[:3], replace(ratings[3], first_error=True), ratings[4]])
    row = prm_row(marked)
    assert isinstance(row, dict) and row["labels"] == [True, False, True, False]  # stops at the mark, step 3
    steps = prm800k_row(marked)["steps"]  # type: ignore[index]
    assert [s["first_error"] for s in steps] == [False, False, False, True, False]
    assert prm_row(sample)["labels"] == [True, False]  # type: ignore[index]  # no mark: the first -1


# --- completions ---------------------------------------------------------------------------


def test_completion_keeps_thinking_in_think_tags():
    assert completion_text("a\nb", "42") == "<think>\na\nb\n</think>\n\n42"


def test_completion_without_thinking_is_just_the_answer():
    assert completion_text("", "42") == "42"
    assert completion_text("  \n", "42") == "42"


# --- prm -------------------------------------------------------------------------------------


def test_prm_steps_in_order_with_bool_labels_and_stripped_text():
    sample = make_sample([1, 1, 1])
    # shuffle the stored order: the row must follow step.index
    sample = replace(sample, steps=list(reversed(sample.steps)))
    row = prm_row(sample)
    assert row == {
        "prompt": "What is 6*7?",
        "completions": ["step 0", "step 1", "step 2"],
        "labels": [True, True, True],
    }


def test_prm_first_error_is_the_last_step_included():
    row = prm_row(make_sample([1, 1, -1, 1, -1]))
    assert row["completions"] == ["step 0", "step 1", "step 2"]
    assert row["labels"] == [True, True, False]


def test_prm_steps_after_an_error_may_be_unrated():
    row = prm_row(make_sample([1, -1, None, None]))
    assert row["labels"] == [True, False]


def test_prm_steps_after_the_last_labelled_one_are_not_included():
    row = prm_row(make_sample([1, 1, None, None]))
    assert row["completions"] == ["step 0", "step 1"]


def test_prm_unlabelled_step_in_the_middle_skips_the_sample():
    assert prm_row(make_sample([1, None, 1])) == SKIP_UNLABELLED_GAP


def test_prm_unlabelled_first_step_skips_the_sample():
    assert prm_row(make_sample([None, 1])) == SKIP_UNLABELLED_GAP


def test_prm_sample_without_ratings_is_skipped():
    assert prm_row(make_sample([None, None])) == SKIP_NO_LABELS


@pytest.mark.parametrize(
    ("neutral", "completions", "labels"),
    [
        ("true", ["step 0", "step 1", "step 2"], [True, True, False]),
        ("false", ["step 0", "step 1", "step 2"], [True, False, False]),
        ("skip", ["step 0", "step 1\nstep 2"], [True, False]),
    ],
)
def test_prm_neutral_policy(neutral, completions, labels):
    row = prm_row(make_sample([1, 0, -1]), neutral)
    assert row["completions"] == completions
    assert row["labels"] == labels


def test_prm_neutral_skip_drops_a_trailing_neutral_step():
    row = prm_row(make_sample([1, 0]), "skip")
    assert row == {"prompt": "What is 6*7?", "completions": ["step 0"], "labels": [True]}


def test_prm_neutral_skip_with_only_neutral_steps_skips_the_sample():
    assert prm_row(make_sample([0, 0]), "skip") == SKIP_NO_LABELS


def test_prm_batch_counts_skips_and_label_balance():
    samples = [make_sample([1, 1, -1]), make_sample([1, None, 1], sample_id=2), make_sample([1], annotator="carol")]
    batch = build_rows("prm", samples)
    assert len(batch.rows) == 2
    assert batch.skipped == 1
    assert batch.skip_reasons == {SKIP_UNLABELLED_GAP: 1}
    assert batch.label_balance == {"true": 3, "false": 1}
    assert batch.annotators == ["alice", "carol"]


def test_unknown_neutral_policy_is_refused_with_the_choices():
    with pytest.raises(ExportError, match=r"neutral='maybe' is not one of true, false, skip"):
        build_rows("prm", [make_sample([1])], neutral="maybe")


def test_unknown_format_is_refused_with_the_choices():
    with pytest.raises(ExportError, match=r"format='orm' is not one of prm, preference, kto, sft, prm800k"):
        build_rows("orm", [make_sample([1])])


# --- empty selections --------------------------------------------------------------------------


def test_empty_selection_raises_naming_the_filters():
    filters = ExportFilters(annotator="alice", model=None, since=datetime(2025, 1, 2))
    with pytest.raises(ExportError) as info:
        build_rows("prm", [], filters=filters)
    assert str(info.value) == (
        "No labelled samples match (annotator=alice, model=any, since=2025-01-02 00:00:00): "
        "label some steps in the Annotate tab first, or widen the filters."
    )


@pytest.mark.parametrize("fmt", ["preference", "kto", "sft", "prm800k"])
def test_every_format_refuses_an_empty_selection(fmt):
    with pytest.raises(ExportError, match=r"match \(annotator=any, model=any, since=any\).*widen the filters"):
        build_rows(fmt)


def test_all_samples_skipped_is_an_error_that_says_why():
    with pytest.raises(ExportError, match=r"all skipped \(unlabelled step before the last labelled one: 2\)"):
        build_rows("prm", [make_sample([None, 1]), make_sample([1, None, -1], sample_id=2)])


# --- preference -------------------------------------------------------------------------------


def test_text_prompt_ends_on_exactly_one_newline():
    assert text_prompt("What is 6*7?") == "What is 6*7?\n"
    assert text_prompt("What is 6*7?  \n\n") == "What is 6*7?\n"


def test_preference_standard_rows_keep_thinking():
    batch = build_rows("preference", [make_pair()])
    assert batch.rows == [
        {"prompt": "What is 6*7?\n", "chosen": "<think>\nthink A\n</think>\n\n42", "rejected": "41"}
        | no_lineage("preference"),
    ]
    assert batch.label_balance == {"pairs": 1}


def test_preference_conversational_rows_are_role_messages():
    (row,) = build_rows("preference", [make_pair()], conversational=True).rows
    assert row == {
        "prompt": [{"role": "user", "content": "What is 6*7?"}],
        "chosen": [{"role": "assistant", "content": "<think>\nthink A\n</think>\n\n42"}],
        "rejected": [{"role": "assistant", "content": "41"}],
    } | no_lineage("preference")


# --- kto / sft ----------------------------------------------------------------------------------


def test_kto_rows_come_from_verdicts_only():
    samples = [make_sample([1], marked_correct=True), make_sample([1], sample_id=2, marked_correct=False)]
    samples.append(make_sample([1], sample_id=3, marked_correct=None))
    batch = build_rows("kto", samples)
    assert [r["label"] for r in batch.rows] == [True, False]
    assert batch.rows[0] == {
        "prompt": "What is 6*7?\n",
        "completion": "<think>\nLet me think.\n</think>\n\n42",
        "label": True,
    } | no_lineage("kto")
    assert batch.label_balance == {"positive": 1, "negative": 1}
    assert batch.skipped == 1


def test_kto_conversational_rows():
    (row,) = build_rows("kto", [make_sample([], marked_correct=False, thinking="")], conversational=True).rows
    assert row == {
        "prompt": [{"role": "user", "content": "What is 6*7?"}],
        "completion": [{"role": "assistant", "content": "42"}],
        "label": False,
    } | no_lineage("kto")


def test_sft_keeps_only_samples_marked_correct():
    samples = [make_sample([], marked_correct=True), make_sample([], sample_id=2, marked_correct=False)]
    batch = build_rows("sft", samples)
    assert batch.rows == [
        {
            "messages": [
                {"role": "user", "content": "What is 6*7?"},
                {"role": "assistant", "content": "<think>\nLet me think.\n</think>\n\n42"},
            ]
        }
        | no_lineage("sft")
    ]
    assert batch.skipped == 1


def test_sft_with_only_incorrect_samples_is_an_error():
    with pytest.raises(ExportError, match="marked incorrect"):
        build_rows("sft", [make_sample([], marked_correct=False)])


# --- prm800k ------------------------------------------------------------------------------------


def test_prm800k_keeps_raw_ratings_comments_and_timing():
    row = prm800k_row(make_sample([1, 0, -1, 1, None]))
    assert row["finish_reason"] == "found_error"
    assert [s["rating"] for s in row["steps"]] == [1, 0, -1, 1]  # ratings after the error are kept
    assert [s["first_error"] for s in row["steps"]] == [False, False, True, False]
    assert row["steps"][0] == {
        "index": 0,
        "text": " step 0\n",
        "source": "thinking",
        "rating": 1,
        "comment": "c0",
        "first_error": False,
        "labelled_at": "2025-03-01T12:00:00.000000",
    }
    assert (row["labelled_at_start"], row["labelled_at_end"]) == (
        "2025-03-01T12:00:00.000000",
        "2025-03-01T12:00:30.000000",
    )
    assert (row["model"], row["annotator"]) == ("tiny/model", "alice")


def test_prm800k_keeps_a_gap_as_null_rating():
    row = prm800k_row(make_sample([1, None, 1, None]))
    assert [s["rating"] for s in row["steps"]] == [1, None, 1]
    assert row["steps"][1]["labelled_at"] is None
    assert row["finish_reason"] == "partial"


def test_prm800k_fully_rated_without_error_is_a_solution():
    assert prm800k_row(make_sample([1, 0, 1]))["finish_reason"] == "solution"


# --- card ---------------------------------------------------------------------------------------


def test_card_lists_counts_balance_models_and_annotators():
    batch = build_rows("prm", [make_sample([1, 1, -1]), make_sample([1, None, 1], sample_id=2)])
    card = render_card(batch, filters=ExportFilters(annotator="alice"), created=datetime(2025, 3, 2))
    front, body = card.split("---\n", 2)[1:]
    assert "path: data/train-00000-of-00001.parquet" in front
    assert "size_categories:\n- n<1K" in front
    assert "| Rows | 1 |" in body
    assert "| Skipped | 1 (unlabelled step before the last labelled one: 1) |" in body
    assert "| Step labels | true 2 · false 1 (67% true) |" in body
    assert "`tiny/model`" in body and "`alice`" in body
    assert "2025-03-02" in body
    assert "PRMTrainer" in body


def test_size_category_buckets():
    assert [size_category(n) for n in (0, 999, 1000, 20_000, 500_000, 2_000_000)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "10K<n<100K",
        "100K<n<1M",
        "1M<n<10M",
    ]
