"""vote / pass_at_1 / majority_at_k / first_answer_position / overthinking_tokens."""

import gzip
import json
from pathlib import Path

import pytest

from app.reasoning.answers import extract_answer, numeric_value
from app.reasoning.vote import (
    VoteResult,
    first_answer_position,
    majority_at_k,
    overthinking_tokens,
    pass_at_1,
    prompt_numbers,
    vote,
)


def test_equivalent_answers_are_grouped_under_their_first_spelling():
    result = vote(["0.5", "18", "1/2", "\\frac{1}{2}", None], gold="1/2")
    assert result == VoteResult(
        majority="0.5",
        share=3 / 5,
        agreement=3 / 4,
        counts=[("0.5", 3), ("18", 1)],
        n=5,
        abstained=1,
        correct=[True, False, True, True, False],
        majority_correct=True,
    )


def test_tie_goes_to_the_answer_seen_first():
    assert vote(["7", "8", "8", "7"]).majority == "7"
    assert vote(["8", "7", "7", "8"]).majority == "8"
    assert vote(["8", "7", "7", "8"]).counts == [("8", 2), ("7", 2)]


def test_without_gold_correctness_is_unknown():
    result = vote(["18", "18.0", "$18"])
    assert (result.majority, result.agreement, result.correct, result.majority_correct) == ("18", 1.0, None, None)


def test_all_abstaining_has_no_majority():
    result = vote([None, None], gold="3")
    assert (result.majority, result.share, result.agreement, result.abstained) == (None, 0.0, 0.0, 2)
    assert result.majority_correct is False
    assert result.correct == [False, False]


def test_empty_vote():
    result = vote([])
    assert (result.majority, result.n, result.counts) == (None, 0, [])


def test_wrong_majority_is_marked_wrong():
    assert vote(["17", "17", "18"], gold="18").majority_correct is False


def test_pass_at_1_counts_unknown_as_wrong():
    assert pass_at_1([True, False, True, None]) == 0.5
    assert pass_at_1([]) == 0.0


def test_majority_at_k_uses_the_first_k_samples():
    answers = [["1", "2", "2"], ["5", "5", "6"], [None, "9", "9"]]
    golds = ["1", "5", "9"]
    assert majority_at_k(answers, golds, k=1) == pytest.approx(2 / 3)
    assert majority_at_k(answers, golds) == pytest.approx(2 / 3)
    assert majority_at_k(answers, golds, k=2) == pytest.approx(1.0)


def test_majority_at_k_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="gold"):
        majority_at_k([["1"]], ["1", "2"])
    with pytest.raises(ValueError, match="k=0"):
        majority_at_k([["1"]], ["1"], k=0)


def test_first_answer_position_is_the_end_of_the_first_whole_occurrence():
    thinking = "Not 118, not 18.5, not 180. So 9 * 2 = 18. Wait, let me double-check: yes, 18 it is."
    assert first_answer_position(thinking, "18") == (thinking.index("= 18") + 4) / len(thinking)


def test_first_answer_position_matches_numbers_by_value():
    thinking = "The price is $1,234.50 per unit, and we keep going for a long while afterwards."
    assert first_answer_position(thinking, "1234.5") == pytest.approx(thinking.index(" per") / len(thinking))


def test_first_answer_position_fractions_only_for_non_integers():
    assert first_answer_position("16/2 gives the answer 8 in the end", "8") == pytest.approx(23 / 34)
    thinking = "half is 1/2 of the pie"
    assert first_answer_position(thinking, "0.5") == pytest.approx(11 / len(thinking))


def test_first_answer_position_for_text_answers_and_absences():
    assert first_answer_position("The capital is Paris, surely.", "paris") == pytest.approx(20 / 29)
    assert first_answer_position("no answer here", "18") is None
    assert first_answer_position("", "18") is None
    assert first_answer_position("18", None) is None


def test_overthinking_tokens():
    assert overthinking_tokens(1000, 0.25) == 750
    assert overthinking_tokens(1000, 1.0) == 0
    assert overthinking_tokens(1000, None) is None


def test_majority_of_the_four_gsm8k_solvers_is_pinned():
    # The bench's headline number (bench/gsm8k_vote.py): ties go to the first answer in file order.
    path = Path(__file__).resolve().parent / "data" / "gsm8k_example_model_solutions.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    models = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")
    answers = [[extract_answer(row[m]["solution"]) for m in models] for row in rows]
    golds = [extract_answer(row["ground_truth"]) for row in rows]
    assert round(majority_at_k(answers, golds) * len(rows)) == 584
    assert round(majority_at_k(answers, golds, k=1) * len(rows)) == sum(r["6b_finetuning"]["is_correct"] for r in rows)


def _restating_solutions() -> list[tuple[str, str, str]]:
    """(question, trace without its "A:" line, final answer) of real GSM8K model solutions whose final
    answer is also a number of the question."""
    path = Path(__file__).resolve().parent / "data" / "gsm8k_example_model_solutions.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    out = []
    for row in rows:
        for solver in ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification"):
            solution = row[solver]["solution"]
            trace, _, final = solution.rpartition("\nA:")
            final = final.strip()
            if trace and final and numeric_value(final) in prompt_numbers(row["question"]):
                out.append((row["question"], trace, final))
    return out


def test_a_number_restated_from_the_question_is_not_the_answer_reached():
    question = "James decides to run 3 sprints 3 times a week.  He runs 60 meters each sprint.  How many total meters does he run a week?"  # noqa: E501  (GSM8K test line 4, 6b_finetuning)
    trace = (
        "He runs 60/3=<<60/3=20.0>>20 meters in each sprint\nSo he runs 20*3=<<20*3=60>>60 meters in total each week"
    )
    assert first_answer_position(trace, "60") == pytest.approx(trace.index("60/3") / len(trace) + 2 / len(trace))
    assert first_answer_position(trace, "60", question) == pytest.approx((trace.index("=60>>") + 3) / len(trace))
    # A number that is not in the question is found wherever it appears, as before.
    assert first_answer_position(trace, "20", question) == first_answer_position(trace, "20")


def test_restated_prompt_numbers_on_real_gsm8k_traces():
    cases = _restating_solutions()
    assert len(cases) == 334  # of 5,276 solutions, these end on a number the question already contains
    moved = later = lost = 0
    for question, trace, final in cases:
        old, new = first_answer_position(trace, final), first_answer_position(trace, final, question)
        if new != old:
            moved += 1
            assert old is not None and (new is None or new > old)  # only ever later: restatements are skipped
            later += new is not None
            lost += new is None
    assert (moved, later, lost) == (295, 278, 17)
    # Overthinking measured on these traces drops: the mean share after the answer was "reached".
    olds = [1 - p for q, t, f in cases if (p := first_answer_position(t, f)) is not None]
    news = [1 - p for q, t, f in cases if (p := first_answer_position(t, f, q)) is not None]
    assert sum(news) / len(news) < 0.5 * sum(olds) / len(olds)
