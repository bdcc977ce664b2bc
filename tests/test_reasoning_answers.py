"""extract_answer / answers_equal / answer_key: hand-written edge cases and the GSM8K floor."""

from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path

import pytest

from app.reasoning.answers import answer_key, answers_equal, clean_answer, extract_answer, extract_sample_answer

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "tests" / "data" / "gsm8k_example_model_solutions.jsonl.gz"
SAMPLE = ROOT / "assets" / "gsm8k_sample.jsonl"
SHARED = ROOT.parent / "shared" / "data" / "gsm8k"
MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so the answer is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
        ("\\boxed{\\frac{\\sqrt{2}}{2}}", "\\frac{\\sqrt{2}}{2}"),  # nested braces
        ("first \\boxed{3}, then corrected: \\boxed{4}", "4"),  # repeated boxes: the last
        ("\\boxed{\\text{18 dollars}}", "18"),
        ("\\boxed 7", "7"),
        ("\\boxed{5} then a cut-off \\boxed{\\frac{1}{", "5"),  # unbalanced last box is skipped
        ("<answer>42</answer>", "42"),
        ("<answer>She makes $18 every day.</answer>", "18"),
        ("Final Answer: The final answer is $18$. I hope it is correct.", "18"),
        ("**Final Answer**\n\n\\$1,234.50", "1234.50"),
        ("The final answer is 3\\sqrt{2}.", "3\\sqrt{2}"),
        ("She makes 9 * 2 = <<9*2=18>>18\n#### 18", "18"),
        ("#### Step 1: add\n16 - 3 = 13", "13"),  # a markdown heading is not GSM8K's ####
        ("9 * 2 = 18\nA: 18", "18"),
        ("A: 2,125", "2125"),
        ("The answer is $1,234.50.", "1234.50"),
        ("The answer is 18 dollars.", "18"),
        ("So the answer is probably 18 or so", "18"),
        ("The answer is -$5", "-5"),
        ("The answer is 25%", "25"),
        ("The answer is Paris.", "Paris"),
        ("She has 16 - 3 = 13 eggs and sells them for 26 dollars", "26"),
        ("It costs \u22124 degrees", "-4"),
        ("nothing numeric here", None),
        ("", None),
        ("\\boxed{}", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_extract_answer_priority_boxed_beats_cues_and_last_number():
    text = "The answer is 7.\n#### 8\nFinal Answer: 9\nSo \\boxed{10} and then 11"
    assert extract_answer(text) == "10"
    assert extract_answer(text.replace("\\boxed{10}", "10")) == "9"


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [("$1,234.50", "1234.50"), ("18 dollars", "18"), ("18.", "18"), ("$\\frac{1}{2}$", "\\frac{1}{2}"), ("2x", "2x")],
)
def test_clean_answer_strips_currency_units_commas_and_period(raw, cleaned):
    assert clean_answer(raw) == cleaned


def test_answer_stated_only_in_the_thinking_is_found():
    assert extract_sample_answer("9 eggs at $2, so \\boxed{18}", "") == "18"
    assert extract_sample_answer("I think \\boxed{17}", "She makes $18.") == "18"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1/2", "0.5"),
        ("\\frac{1}{2}", "0.5"),
        ("\\dfrac{1}{2}", "1/2"),
        ("18.0", "18"),
        ("$18", "18 dollars"),
        ("2\\sqrt{2}", "\\sqrt{8}"),
        ("x = 5", "5"),
        ("Monday", "monday."),
        ("(B)", "B"),
    ],
)
def test_equivalent_answers_are_equal(a, b):
    assert answers_equal(a, b)
    assert answers_equal(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [("18", "19"), ("1/2", "0.51"), ("Monday", "Mondya"), ("18", None), (None, None), ("", "")],
)
def test_different_answers_are_not_equal(a, b):
    # "Monday" vs "Mondya": math-verify would read both as the product M*o*n*d*a*y and call them equal.
    assert not answers_equal(a, b)


def test_power_towers_fall_back_to_string_comparison_instead_of_hanging():
    # math-verify without its (signal) timeout would evaluate 2**(10**100) forever.
    assert not answers_equal("2^{10^{100}}", "5")
    assert answers_equal("2^{10^{100}}", "2^{10^{100}}")


def test_answer_key_groups_equal_numbers():
    assert answer_key("18.0") == answer_key("18") == answer_key("$18.00") == "18"
    assert answer_key("0.5") == answer_key("\\frac{1}{2}") == answer_key("1/2") == "1/2"
    assert answer_key("The Eiffel Tower!") == "the eiffel tower"


def test_answers_equal_works_in_a_worker_thread():
    # Gradio runs handlers in threads; math-verify's signal-based timeouts would raise there.
    results: list[object] = []

    def work() -> None:
        try:
            results.append((answers_equal("\\sqrt{12}", "2\\sqrt{3}"), answers_equal("3/4", "0.7")))
        except Exception as exc:  # surfaced by the assert below
            results.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)
    assert results == [(True, False)]


def load_solutions() -> list[dict]:
    with gzip.open(SOLUTIONS, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_extraction_reproduces_is_correct_for_all_5276_gsm8k_solutions():
    rows = load_solutions()
    assert len(rows) == 1319
    agree, disagree = 0, []
    for row in rows:
        gold = extract_answer(row["ground_truth"])
        for model in MODELS:
            predicted = extract_answer(row[model]["solution"])
            if answers_equal(predicted, gold) == row[model]["is_correct"]:
                agree += 1
            else:
                disagree.append((model, gold, predicted))
    assert disagree == []
    assert agree == 5276


def test_bundled_sample_is_50_problems_with_numeric_gold():
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 50
    for row in rows:
        assert set(row) == {"question", "answer", "final"}
        assert isinstance(row["final"], int | float)
        assert answers_equal(extract_answer(row["answer"]), str(row["final"]))


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/gsm8k (the full GSM8K test set) is not checked out")
def test_full_test_set_gold_matches_the_example_solutions_ground_truth():
    test_rows = [json.loads(line) for line in (SHARED / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = load_solutions()
    assert len(test_rows) == len(rows) == 1319
    for test_row, row in zip(test_rows, rows, strict=True):
        assert test_row["question"] == row["question"]
        assert answer_key(extract_answer(test_row["answer"])) == answer_key(extract_answer(row["ground_truth"]))
    sample = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    assert [r["question"] for r in sample] == [r["question"] for r in test_rows[:50]]


def test_an_equation_after_the_cue_gives_its_result():
    assert extract_answer("Final Answer: 16 x $2 = $32") == "32"
    assert extract_answer("Final Answer: $2 * 1.6 = $3.20") == "3.20"
    assert extract_answer("The answer is x = 5.") == "5"
