"""Self-consistency and hybrid-compare services on the tiny random model and a real SQLite store,
plus the pure parts (vote report, step alignment, verdict) on hand-written results."""

from __future__ import annotations

import pytest

from app.domain import GenerationResult, GenerationSettings, SampleResult, budget_label
from app.engine.events import CancelToken, Progress
from app.services import compare, consistency, inputs
from app.services.runs import save_result
from app.store.errors import NotFound

FAST = GenerationSettings(effort=None, max_thinking_tokens=6, max_answer_tokens=4, temperature=0.8, seed=3)


def _sample(index: int, thinking: str, answer: str, tokens: int = 40) -> SampleResult:
    return SampleResult(
        index=index,
        raw_text=f"<think>{thinking}</think>{answer}",
        thinking=thinking,
        answer=answer,
        thinking_tokens=tokens,
        answer_tokens=5,
        stop_reason="end",
        seconds=1.0,
    )


def _result(samples: list[SampleResult], prompt: str = "How many eggs?") -> GenerationResult:
    from app.services.runs import finish_result

    result = GenerationResult(
        model="hand-written",
        format="prompted",
        settings=FAST.with_(samples=len(samples)),
        samples=samples,
        prompt=prompt,
    )
    finish_result(result)  # fills extracted_answer the way a real run does
    return result


# --- the pure report ------------------------------------------------------------------------------


def test_report_votes_marks_correctness_and_measures_overthinking():
    result = _result(
        [
            _sample(0, "16 - 3 - 4 = 9 eggs. 9 * 2 = 18. Let me double-check: still 18.", "The answer is 18."),
            _sample(1, "9 * 2 = 18", "Final Answer: $18"),
            _sample(2, "16 - 3 = 13", "Final Answer: 17"),
            _sample(3, "", ""),
        ]
    )
    report = consistency.build_report(result, run_id=7, gold="#### 18")

    assert report.gold == "18"
    assert report.vote.majority == "18" and report.vote.counts[0] == ("18", 2)
    assert report.vote.share == 0.5 and report.vote.abstained == 1
    assert report.vote.majority_correct is True
    assert [s.correct for s in report.samples] == [True, True, False, False]
    assert [s.in_majority for s in report.samples] == [True, True, False, False]
    first = report.samples[0]
    assert first.first_answer_position is not None and 0 < first.first_answer_position < 1
    assert first.overthinking_tokens == round(40 * (1 - first.first_answer_position))
    assert report.samples[1].first_answer_position == 1.0 and report.samples[1].overthinking_tokens == 0
    assert report.samples[3].first_answer_position is None
    payload = report.to_json()
    assert payload["vote"]["counts"][0] == ["18", 2] and payload["k"] == 4


def test_report_without_gold_has_no_correctness():
    report = consistency.build_report(_result([_sample(0, "x", "A: 3"), _sample(1, "y", "A: 3")]), 1, gold="  ")
    assert report.gold is None and report.vote.majority_correct is None
    assert all(s.correct is None for s in report.samples)


def test_answer_groups_carry_their_samples_and_correctness_for_the_charts():
    answers = ["18", "$18", "17", None, "18.0", "  "]
    samples = [_sample(i, "", f"Final Answer: {a}" if a else "") for i, a in enumerate(answers)]
    report = consistency.build_report(_result(samples), run_id=1, gold="18")
    groups = [(g.answer, g.samples, g.correct, g.majority) for g in report.groups]
    assert groups == [("18", [0, 1, 4], True, True), ("17", [2], False, False), (None, [3, 5], False, False)]
    assert [g.count for g in report.groups[:2]] == [c for _, c in report.vote.counts]
    assert [s.group for s in report.samples] == [0, 0, 1, 2, 0, 2]
    assert report.to_json()["groups"][1] == {"answer": "17", "samples": [2], "correct": False, "majority": False}

    ungraded = consistency.build_report(_result(samples[:3]), run_id=1, gold=None)
    assert [(g.answer, g.correct) for g in ungraded.groups] == [("18", None), ("17", None)]


@pytest.mark.parametrize("k", [0, 9])
def test_k_out_of_range_is_refused(k):
    with pytest.raises(ValueError, match=f"k={k}"):
        consistency.consistency_settings(FAST, k, max_samples=8)


def test_k_above_the_servers_cap_says_how_to_raise_it():
    message = "k=40 is more than this server allows (max_samples=32); lower k or start with --max-samples 40"
    with pytest.raises(ValueError, match=f"^{message.replace('(', '[(]').replace(')', '[)]')}$"):
        inputs.check_samples(40, 32)
    assert inputs.check_samples(32, 32) == 32


def test_sampling_refuses_k_above_the_runtime_setting_before_anything_runs(tiny_runtime):
    cap = tiny_runtime.settings.max_samples
    with pytest.raises(ValueError, match=f"k={cap + 1} is more than this server allows [(]max_samples={cap}[)]"):
        consistency.sample_consistency(tiny_runtime, "What is 2 + 2?", FAST, k=cap + 1)
    assert tiny_runtime.store.count_runs() == 0


def test_greedy_settings_get_a_temperature_so_samples_can_differ():
    assert consistency.consistency_settings(FAST.with_(temperature=0.0), 4, max_samples=8).temperature == 0.7
    assert consistency.consistency_settings(FAST.with_(temperature=0.0), 1, max_samples=8).temperature == 0.0
    assert consistency.consistency_settings(FAST.with_(temperature=0.3), 4, max_samples=8).temperature == 0.3


def test_align_steps_pairs_equal_steps_and_marks_the_differences():
    left = ["Start with 16 eggs.", "Eat 3:  13 left.", "Bake 4: 9 left.", "Answer 18."]
    right = ["start with 16 eggs.", "Eat 3: 12 left.", "Answer 18.", "Check: yes."]
    rows = consistency.align_steps(left, right)
    assert [r.tag for r in rows] == ["equal", "replace", "delete", "equal", "insert"]
    assert rows[0].similarity == 1.0 and 0 < rows[1].similarity < 1
    assert rows[2].left == "Bake 4: 9 left." and rows[2].right is None
    assert rows[4].left is None and rows[4].right == "Check: yes."
    assert [r.left_index for r in rows] == [0, 1, 2, 3, None]


# --- on the tiny model ------------------------------------------------------------------------------


def test_k_samples_are_one_batched_generate_saved_as_one_run(tiny_runtime, monkeypatch):
    calls = []
    real_stream = tiny_runtime.engine.stream

    def counting_stream(messages, settings, cancel=None, **kwargs):  # a spy: the real engine still runs
        calls.append(settings.samples)
        return real_stream(messages, settings, cancel, **kwargs)

    monkeypatch.setattr(tiny_runtime.engine, "stream", counting_stream)
    progress: list[Progress] = []
    report = consistency.sample_consistency(
        tiny_runtime, "What is 2 + 2?", FAST, k=5, gold="4", progress=progress.append
    )

    assert calls == [5]
    assert report.k == 5 and report.vote.n == 5 and report.status == "done"
    assert sum(c for _, c in report.vote.counts) + report.vote.abstained == 5
    assert progress and progress[-1].total == 5
    run = tiny_runtime.store.get_run(report.run_id)
    assert run.kind == "consistency" and run.gold == "4" and len(run.samples) == 5
    assert all(s.thinking_tokens <= 6 for s in report.samples)

    reopened = consistency.load_consistency_report(tiny_runtime, report.run_id)
    assert reopened.to_json()["vote"] == report.to_json()["vote"]
    assert [s.extracted_answer for s in reopened.samples] == [s.extracted_answer for s in report.samples]


def test_a_cancelled_sampling_is_saved_as_cancelled(tiny_runtime):
    token = CancelToken()
    token.cancel()
    report = consistency.sample_consistency(tiny_runtime, "What is 2 + 2?", FAST, k=3, cancel=token)
    assert report.status == "cancelled"
    assert tiny_runtime.store.get_run(report.run_id).status == "cancelled"


def test_side_by_side_aligns_two_stored_samples(tiny_runtime):
    result = _result(
        [
            _sample(0, "Start with 16 eggs.\nEat 3, 13 left.\nSell 13 for 26.", "Final Answer: 26"),
            _sample(1, "Start with 16 eggs.\nEat 3 and bake 4, 9 left.\nSell 9 for 18.", "Final Answer: 18"),
        ]
    )
    run_id = save_result(tiny_runtime, result, kind="consistency")
    view = consistency.side_by_side(tiny_runtime, run_id, 0, 1)
    assert view.rows[0].tag == "equal" and view.rows[0].left == "Start with 16 eggs."
    assert {r.tag for r in view.rows[1:]} <= {"replace", "insert", "delete"}
    assert view.identical_steps == 1
    assert view.to_json()["a"] == 0 and view.to_json()["b"] == 1

    with pytest.raises(ValueError, match="sample 3 does not exist: run .* has samples 1 to 2"):
        consistency.side_by_side(tiny_runtime, run_id, 0, 2)
    with pytest.raises(NotFound):
        consistency.side_by_side(tiny_runtime, run_id + 100, 0, 1)


# --- hybrid compare ----------------------------------------------------------------------------------


def test_variant_budgets_put_thinking_off_first():
    assert compare.variant_budgets([256, 64, 0, 64]) == [0, 64, 256]
    with pytest.raises(ValueError, match="at least one thinking budget above 0"):
        compare.variant_budgets([0])
    with pytest.raises(ValueError, match="negative"):
        compare.variant_budgets([-5, 10])
    with pytest.raises(ValueError, match="at most 4"):
        compare.variant_budgets([1, 2, 3, 4, 5])


def test_compare_runs_off_and_each_budget_as_saved_runs(tiny_runtime):
    seen = []
    report = compare.compare_thinking(
        tiny_runtime,
        "What is 2 + 2?",
        [4, 8],
        FAST.with_(temperature=0.0),
        gold="4",
        progress=lambda done, total: seen.append((done, total)),
    )
    assert [v.label for v in report.variants] == ["thinking off", "budget 4", "budget 8"]
    assert report.variants[0].thinking_tokens == 0 and report.variants[0].thinking == ""
    assert report.variants[1].thinking_tokens <= 4 and report.variants[2].thinking_tokens <= 8
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert report.variants[0].agrees_with_off is True
    for v in report.variants:
        run = tiny_runtime.store.get_run(v.run_id)
        assert (run.kind, run.label, run.gold) == ("compare", v.label, "4")
        assert run.settings.thinking is (v.budget > 0)
    assert report.to_json()["variants"][2]["budget"] == 8 and report.verdict


def test_compare_stops_after_a_cancel(tiny_runtime):
    token = CancelToken()
    token.cancel()
    report = compare.compare_thinking(tiny_runtime, "What is 2 + 2?", [4], FAST, cancel=token)
    assert report.cancelled and report.variants == [] and "Cancelled" in report.verdict


def _variant(budget: int, answer: str | None, correct: bool | None, agrees: bool) -> compare.Variant:
    return compare.Variant(
        index=0,
        raw_text="",
        label=budget_label(budget),
        budget=budget,
        run_id=1,
        answer="",
        thinking="",
        extracted_answer=answer,
        thinking_tokens=budget,
        answer_tokens=3,
        seconds=1.0 + budget / 100,
        stop_reason="end",
        agrees_with_off=agrees,
        agrees_with_majority=True,
        correct=correct,
    )


def test_verdict_says_whether_thinking_was_worth_it():
    worth = compare.verdict([_variant(0, "17", False, True), _variant(64, "18", True, False)], graded=True)
    assert worth.startswith("Worth it") and "budget 64" in worth
    needless = compare.verdict([_variant(0, "18", True, True), _variant(64, "18", True, True)], graded=True)
    assert needless.startswith("Not needed")
    same = compare.verdict([_variant(0, "18", None, True), _variant(64, "18", None, True)], graded=False)
    assert same.startswith("Thinking did not change the answer")
    changed = compare.verdict([_variant(0, "17", None, True), _variant(64, "18", None, False)], graded=False)
    assert "changed the answer at budget 64" in changed
