"""What the Branch panels say, on the tiny model and a real SQLite store (no server): the cost of the rollouts
before they start (N × budget, the budget defaulting to the thinking kept plus the allowance, editable), and
the result of a branch whose rollouts were all cancelled, which is not shown as a vote."""

from __future__ import annotations

from html import unescape

from app.domain import GenerationResult, GenerationSettings, SampleResult
from app.reasoning.steps import segment_trace
from app.services.consistency import build_report
from app.services.rollout_plan import ROLLOUT_ALLOWANCE
from app.services.runs import finish_result
from app.ui.branch_here import cost_html, result_html

THINKING = "First, 3 + 4 = 7.\nThen 7 * 2 = 14.\nSo the answer is 7."


def test_a_branch_of_cancelled_rollouts_shows_no_vote_and_escapes_nothing_into_html():
    cut = "The bill is 24000.\nThen 40000 and <b>15</b>"
    samples = [SampleResult(i, "", cut, "", 200, 0, "cancelled") for i in range(4)]
    result = GenerationResult("tiny", "prompted", GenerationSettings(), samples, "What is 3 + 4?")
    finish_result(result)
    html = unescape(result_html(build_report(result, 12, "7")))
    assert "no rollout finished an answer (4 cancelled)" in html
    assert "×" not in html and "majority" not in html and "24000" not in html and "data-answered='0'" in html


def test_the_cost_is_shown_before_the_rollouts_start_with_the_default_or_the_chosen_budget(tiny_runtime):
    rt = tiny_runtime
    settings = GenerationSettings(effort="high", max_answer_tokens=16)
    sample = SampleResult(0, "", THINKING, "Final Answer: 7", 60, 4, "end")
    run_id = rt.db.save_run(GenerationResult("tiny", "prompted", settings, [sample], "What is 3 + 4?"),
                            [segment_trace(THINKING, "Final Answer: 7")])  # fmt: skip
    kept = round(60 * len("First, 3 + 4 = 7.") / len(THINKING))
    default = unescape(cost_html(rt, {"run_id": run_id}, 1, 1, 4, None))
    assert f"4 rollouts × up to {ROLLOUT_ALLOWANCE} new thinking tokens" in default
    assert f"thinking budget {kept + ROLLOUT_ALLOWANCE}: about {kept} kept" in default
    assert f"at most {4 * (ROLLOUT_ALLOWANCE + 16):,} tokens" in default
    assert "4,096" not in default  # not the run's "high" preset
    chosen = unescape(cost_html(rt, run_id, 1, 1, 2, kept + 100))
    assert "2 rollouts × up to 100 new thinking tokens" in chosen
    assert "step 9 does not exist" in unescape(cost_html(rt, run_id, 1, 9, 2, None))
