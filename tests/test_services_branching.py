"""Branching, step credit and auto labels on the tiny model with a rigged head, so every share is known.

The rig: a bias makes end-of-sequence the top choice at every step. The budget processor then closes the
thinking at once and forces the answer cue, so a rollout from after step k ends with exactly the prefix's
thinking, and its extracted answer is the last number written up to step k. The parent trace below therefore
gives, against the gold answer 7: share 0 from the prompt and after step 1, 1 after step 2 ("= 7"), 0 after
step 3 ("= 14"), 1 after steps 4 and 5 -- whatever the sampling temperature.
"""

from __future__ import annotations

import pytest

from app.domain import GenerationResult, GenerationSettings, SampleResult
from app.reasoning.steps import segment_trace
from app.services.auto_labels import autolabel_run, autolabel_sample, human_vs_auto
from app.services.branching import load_source, prefix_at, resample, step_credit
from app.store import NotFound

THINKING = "Let me think about this problem.\nFirst, 3 + 4 = 7.\nThen 7 * 2 = 14.\nHmm, actually the answer is 7."
ANSWER = "Final Answer: 7"


@pytest.fixture
def rt(eager_stopper, tiny_runtime):
    return type(tiny_runtime)(
        settings=tiny_runtime.settings, loaded=eager_stopper.loaded, engine=eager_stopper, store=tiny_runtime.store
    )


def save_parent(rt, thinking: str = THINKING, answer: str = ANSWER, gold: str | None = None) -> int:
    sample = SampleResult(0, f"{thinking}</think>{answer}", thinking, answer, 40, 5, "end", extracted_answer="7")
    settings = GenerationSettings(max_thinking_tokens=200, max_answer_tokens=8)
    result = GenerationResult("tiny", "prompted", settings, [sample], "What is 3 + 4?")
    return rt.db.save_run(result, [segment_trace(thinking, answer)], gold=gold)


def test_the_prefix_of_a_step_is_the_trace_up_to_its_end(rt):
    source = load_source(rt, save_parent(rt), 0)
    assert [s.source for s in source.steps] == ["thinking"] * 4 + ["answer"]
    assert prefix_at(source, -1).thinking == "" and not prefix_at(source, -1).in_answer
    assert prefix_at(source, 1).thinking == "Let me think about this problem.\nFirst, 3 + 4 = 7.\n"
    last = prefix_at(source, 4)
    assert last.thinking == THINKING and last.answer == ANSWER + "\n"


def test_step_credit_shares_importance_and_anchors_are_as_rigged(rt):
    run_id = save_parent(rt)
    seen = []
    report = step_credit(rt, run_id, 0, 3, gold="7", progress=seen.append)
    data = report.to_json()
    assert data["target"] == "7" and data["target_kind"] == "gold"
    shares = [s["share_gold"] for s in data["steps"]]
    assert shares == [0.0, 1.0, 0.0, 1.0, 1.0]
    assert data["from_prompt"]["share_gold"] == 0.0
    assert [s["importance"] for s in data["steps"]] == [0.0, 1.0, -1.0, 1.0, 0.0]
    assert data["anchors"] == [2, 3, 4]
    assert data["steps"][2]["answers"] == {"14": 3}
    assert data["steps"][0]["answers"] == {"(no answer)": 3}
    assert seen[-1].done == seen[-1].total == 6
    # every point's rollouts are a run linked to the parent, reopenable like any other
    for step in data["steps"]:
        link = rt.db.branch_of(step["branch_run_id"])
        assert (link.parent_run_id, link.parent_sample_index, link.parent_step_index) == (run_id, 0, step["index"] - 1)
        assert len(rt.db.get_run(step["branch_run_id"]).samples) == 3
    assert len(rt.db.branches_of(run_id)) == 6  # five steps and the prompt


def test_without_gold_the_target_is_the_rollouts_majority(rt):
    report = step_credit(rt, save_parent(rt), 0, 2, steps="2,3")
    data = report.to_json()
    assert data["target_kind"] == "majority" and data["target"] == "7"
    assert [(s["index"], s["share_majority"], s["importance"]) for s in data["steps"]] == [
        (2, 1.0, 1.0),
        (3, 0.0, -1.0),
    ]


def test_resample_votes_and_saves_a_linked_run(rt):
    run_id = save_parent(rt, gold="7")
    report = resample(rt, run_id, 0, 2, 4)
    assert report.vote.counts == [("14", 4)] and report.vote.majority_correct is False
    link = rt.db.branch_of(report.run_id)
    assert link.kind == "resample" and link.parent_step_index == 2
    assert rt.db.get_run(report.run_id).gold == "7"


def test_bad_branch_requests_name_the_problem(rt):
    run_id = save_parent(rt)
    with pytest.raises(NotFound, match="run 9999 does not exist"):
        step_credit(rt, 9999, 0, 2)
    with pytest.raises(ValueError, match="step 9 does not exist.*steps 1 to 5"):
        step_credit(rt, run_id, 0, 2, steps="9")
    with pytest.raises(ValueError, match="sample 2 does not exist"):
        resample(rt, run_id, 1, 0, 2)
    with pytest.raises(ValueError, match="rollouts=0 must be at least 1"):
        step_credit(rt, run_id, 0, 0)
    with pytest.raises(ValueError, match="--max-samples 33"):
        step_credit(rt, run_id, 0, 33)
    with pytest.raises(ValueError, match="not 'all' or a comma-separated"):
        step_credit(rt, run_id, 0, 2, steps="one")
    empty = save_parent(rt, thinking="", answer="")
    with pytest.raises(ValueError, match="has no steps"):
        step_credit(rt, empty, 0, 2)


def test_autolabel_stores_math_shepherd_labels_apart_from_human_ones(rt):
    run_id = save_parent(rt)
    [report] = autolabel_run(rt, run_id, 2, gold="7")
    assert report.stored and [(lab.soft, lab.hard) for lab in report.labels] == [
        (0.0, False), (1.0, True), (0.0, False), (1.0, True), (1.0, True),
    ]  # fmt: skip
    sample_id = report.sample_id
    auto = rt.db.current_auto_labels(sample_id)
    assert sorted(lab.soft for lab in auto.values()) == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert {lab.source for lab in auto.values()} == {"auto:mc"} and {lab.rollouts for lab in auto.values()} == {2}
    assert rt.db.current_labels(sample_id) == {}  # no human label appeared
    assert rt.db.list_annotators() == []
    assert rt.db.labelled_samples() == []  # the human export query never sees them


def test_autolabel_without_gold_or_any_answer_stores_nothing(rt):
    run_id = save_parent(rt, thinking="Let me think about it.\nI am not sure about this one.", answer="I do not know.")
    runs_before = rt.db.count_runs()
    with pytest.raises(ValueError, match="no gold answer and no majority.*nothing was stored"):
        autolabel_sample(rt, run_id, 0, 2)
    assert rt.db.count_runs() == runs_before
    sample_id = rt.db.get_run(run_id).samples[0].sample_id
    assert rt.db.current_auto_labels(sample_id) == {}


def test_human_vs_auto_kappa_per_annotator_and_pooled(rt):
    run_id = save_parent(rt)
    [report] = autolabel_run(rt, run_id, 2, gold="7")  # auto: bad, good, bad, good, good
    steps = [lab.step_id for lab in report.labels]
    for step_id, rating in zip(steps, [-1, 1, -1, 1, 1], strict=True):
        rt.db.add_label(step_id, "alice", rating)  # agrees everywhere
    for step_id, rating in zip(steps, [1, 1, 0, 1, -1], strict=True):
        rt.db.add_label(step_id, "bob", rating)  # 0 counts as good: disagrees on steps 1, 3, 5
    reports = {r.annotator_a: r for r in human_vs_auto(rt.db)}
    assert reports["alice"].kappa == 1.0 and reports["alice"].overlap == 5
    assert reports["bob"].raw_agreement == pytest.approx(0.4)
    assert reports["bob"].disagreements == [steps[0], steps[2], steps[4]]
    assert reports["all annotators"].overlap == 10
    assert all(r.annotator_b == "auto (rollouts)" for r in reports.values())


def test_cancel_stops_the_curve_and_reports_the_points_that_finished(rt):
    from dataclasses import replace

    from app.engine.events import CancelToken

    small = type(rt)(settings=replace(rt.settings, max_samples=4), loaded=rt.loaded, engine=rt.engine, store=rt.store)
    run_id = save_parent(small)
    cancel = CancelToken()

    def stop_after_first_batch(progress):
        if progress.done >= 2:
            cancel.cancel()

    report = step_credit(small, run_id, 0, 2, gold="7", cancel=cancel, progress=stop_after_first_batch)
    assert report.status == "cancelled"
    assert sorted(k for k in report.branch_runs) == [-1, 0]  # the first batch of two points, saved
    assert report.to_json()["steps"][0]["share_gold"] == 0.0


def test_deleting_the_parent_keeps_its_branches_as_ordinary_runs(rt):
    run_id = save_parent(rt, gold="7")
    branch = resample(rt, run_id, 0, 1, 2).run_id
    rt.db.delete_run(run_id)
    assert rt.db.branch_of(branch).parent_run_id is None
    assert rt.db.get_run(branch).samples


# --- honest votes: cancelled rollouts never answer; the rollouts' budget is said and editable ----------------


def _rollouts(*samples: tuple[str, str, str]) -> GenerationResult:
    """Rollout samples from (thinking, answer, stop reason)."""
    made = [SampleResult(i, "", t, a, 30, len(a.split()), stop) for i, (t, a, stop) in enumerate(samples)]
    return GenerationResult("tiny", "prompted", GenerationSettings(), made, "What is 3 + 4?")


def test_a_cancelled_rollout_never_contributes_an_answer_and_none_is_no_vote():
    from app.services.consistency import build_report
    from app.services.runs import finish_result

    cut = "First, 3 + 4 = 7.\nThen 24000 and 40000"
    result = _rollouts(*[(cut, "", "cancelled")] * 3, (cut, "Final Answer: 1", "cancelled"))
    finish_result(result)
    assert [s.extracted_answer for s in result.samples] == [None] * 4
    report = build_report(result, 1, None)
    assert report.vote.counts == [] and report.vote_text() == "no rollout finished an answer (4 cancelled)"

    mixed = _rollouts(("3 + 4 = 7.", "Final Answer: 7", "end"), ("3 + 4 = 7.", "Final Answer: 7", "budget_cut"),
                      (cut, "", "cancelled"), (cut, "", "budget_cut"), ("So it is 7.", "", "end"))  # fmt: skip
    finish_result(mixed)
    assert [s.extracted_answer for s in mixed.samples] == ["7", "7", None, None, "7"]
    assert build_report(mixed, 2, "7").vote_text() == (
        "3 of 5 rollouts finished an answer: 7 ×3 (1 cancelled, 1 stopped without an answer) · majority correct"
    )


def test_rollouts_default_to_the_thinking_so_far_plus_an_allowance_and_take_a_budget(rt):
    from app.errors import InvalidInput
    from app.services.branching import plan_rollouts
    from app.services.rollout_plan import ROLLOUT_ALLOWANCE

    run_id = save_parent(rt, gold="7")
    source = load_source(rt, run_id, 0)
    kept = round(40 * len(prefix_at(source, 1).thinking.rstrip()) / len(THINKING))
    plan = plan_rollouts(source, 1, 4)
    assert (plan.kept, plan.budget, plan.new_thinking) == (kept, kept + ROLLOUT_ALLOWANCE, ROLLOUT_ALLOWANCE)
    assert plan.most_tokens == 4 * (ROLLOUT_ALLOWANCE + 8)
    assert plan.text.startswith(f"4 rollouts × up to {ROLLOUT_ALLOWANCE} new thinking tokens")
    assert plan_rollouts(source, 4, 2).kept == 40  # from an answer step all the thinking is kept
    default = rt.db.get_run(resample(rt, run_id, 0, 1, 2).run_id).settings
    assert (default.max_thinking_tokens, default.effort) == (kept + ROLLOUT_ALLOWANCE, None)
    chosen = rt.db.get_run(resample(rt, run_id, 0, 1, 2, budget=30).run_id).settings
    assert chosen.max_thinking_tokens == 30
    with pytest.raises(InvalidInput, match="must be at least 1 token"):
        resample(rt, run_id, 0, 1, 2, budget=0)


def test_a_branch_cancelled_mid_thinking_on_the_bundled_model_saves_no_answers(bundled_loaded, bundled_engine,
                                                                                 db_url, tmp_path):  # fmt: skip
    from app.engine.events import CancelToken
    from app.services.runtime import Runtime
    from app.settings import AppSettings
    from app.store import open_store

    settings = AppSettings.from_env(model="bundled", db=db_url, data_dir=str(tmp_path))
    rt = Runtime(settings=settings, loaded=bundled_loaded, engine=bundled_engine, store=open_store(db_url))
    thinking = "The bill is 24000 dollars.\nSplit four ways, each pays 6000.\nLet me check 6000 * 4 = 24000."
    run_id = save_parent(rt, thinking=thinking, answer="Final Answer: 6000")
    token, seen = CancelToken(), []

    def cancel_after_a_few_tokens(progress) -> None:
        seen.append(progress)
        if len(seen) >= 3:
            token.cancel()

    report = resample(rt, run_id, 0, 1, 3, cancel=token, progress=cancel_after_a_few_tokens)
    assert report.status == "cancelled" and report.vote.counts == []
    assert report.vote_text() == "no rollout finished an answer (3 cancelled)"
    stored = rt.db.get_run(report.run_id)
    assert [(s.stop_reason, s.extracted_answer) for s in stored.samples] == [("cancelled", None)] * 3
    assert all("24000" in s.thinking for s in stored.samples)  # the kept thinking has numbers; none is an answer
    rt.db.close()
