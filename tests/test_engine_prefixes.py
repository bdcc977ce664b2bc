"""Continuing a trace prefix, on both engines over the bundled model (``engine``: local, and remote on a real
``transformers serve``): the budget counts the prefix, "Think longer" gets a fresh budget, a prefix inside the
answer continues it, and N rollouts of several prefixes come back as one RolloutBatch of the same shape.
Then the services on a server runtime: step credit and Think longer, which used to refuse ``--server``."""

from __future__ import annotations

import pytest

from app.domain import GenerationResult, GenerationSettings, SampleResult, TracePrefix
from app.engine.events import Progress, RolloutBatch
from app.reasoning.steps import segment_trace
from app.services.branching import step_credit
from app.services.runs import Saved
from app.services.think_longer import stream_think_longer

pytestmark = pytest.mark.bundled
PROMPT = "What is 3 + 4?"
STEPS = "Let me think about this problem.\nFirst, 3 + 4 = 7.\nThen 7 * 2 = 14.\n"


def _count(engine, text: str) -> int:
    return len(engine.tokenizer.encode(text, add_special_tokens=False))


def test_the_prefix_thinking_counts_against_the_budget(engine):
    used = _count(engine, STEPS)
    exact = GenerationSettings(min_thinking_tokens=used + 6, max_thinking_tokens=used + 6, max_answer_tokens=6)
    sample = engine.generate(PROMPT, exact, prefix=TracePrefix(thinking=STEPS)).samples[0]
    assert sample.thinking.startswith(STEPS.strip()) and sample.raw_text.startswith(STEPS)
    assert sample.thinking_tokens == used + 6 and sample.stop_reason == "budget_cut"  # min = max: exactly
    over = GenerationSettings(max_thinking_tokens=used - 3, max_answer_tokens=4)
    sample = engine.generate(PROMPT, over, prefix=TracePrefix(thinking=STEPS)).samples[0]
    assert sample.stop_reason == "budget_cut" and sample.thinking_tokens == used  # cut at once, nothing added
    assert sample.answer.startswith("Final Answer:")


def test_think_longer_gets_a_fresh_budget(engine):
    prefix = TracePrefix(thinking=STEPS + "Wait", fresh_budget=True)
    settings = GenerationSettings(min_thinking_tokens=8, max_thinking_tokens=8, max_answer_tokens=4)
    sample = engine.generate(PROMPT, settings, prefix=prefix).samples[0]
    assert sample.thinking.startswith(STEPS + "Wait")
    assert sample.thinking_tokens == _count(engine, STEPS + "Wait") + 8 and sample.stop_reason == "budget_cut"


def test_a_prefix_inside_the_answer_continues_the_answer(engine):
    prefix = TracePrefix(thinking=STEPS, answer="The answer is")
    sample = engine.generate(PROMPT, GenerationSettings(max_answer_tokens=5), prefix=prefix).samples[0]
    assert sample.thinking == STEPS.strip() and sample.thinking_tokens == _count(engine, STEPS.strip())
    assert sample.answer.startswith("The answer is") and 3 <= sample.answer_tokens <= 5


def test_rollouts_of_several_prefixes_come_back_in_one_batch(engine):
    prefixes = [TracePrefix(thinking=STEPS[:33]), TracePrefix(thinking=STEPS), TracePrefix()]
    settings = GenerationSettings(max_thinking_tokens=32, max_answer_tokens=6, temperature=0.8, seed=3)
    items = list(engine.stream_rollouts(PROMPT, prefixes, settings, 2))
    batch = items[-1]
    assert isinstance(batch, RolloutBatch) and batch.error is None
    assert all(isinstance(item, Progress) for item in items[:-1]) and len(items) > 1
    assert [len(group) for group in batch.samples] == [2, 2, 2]
    for prefix, group in zip(prefixes, batch.samples, strict=True):
        for j, sample in enumerate(group):
            assert sample.index == j and sample.raw_text.startswith(prefix.thinking)
            assert _count(engine, prefix.thinking) <= sample.thinking_tokens <= 32
            assert sample.stop_reason in ("end", "budget_cut", "max_tokens") and sample.answer


def _server_runtime(rt, engine):
    return type(rt)(settings=rt.settings, loaded=engine.loaded, engine=engine, store=rt.store)


def _parent(rt) -> int:
    thinking, answer = "First, 3 + 4 = 7.\nSo the answer is 7.", "Final Answer: 7"
    sample = SampleResult(0, f"{thinking}\n</think>\n\n{answer}", thinking, answer, 16, 5, "end", extracted_answer="7")
    result = GenerationResult("bundled", "prompted", GenerationSettings(max_thinking_tokens=24, max_answer_tokens=8),
                              [sample], PROMPT)  # fmt: skip
    return rt.db.save_run(result, [segment_trace(thinking, answer)], gold="7")


def test_step_credit_and_think_longer_run_on_a_server(remote_engine, tiny_runtime):
    rt = _server_runtime(tiny_runtime, remote_engine)
    run_id = _parent(rt)
    report = step_credit(rt, run_id, 0, 2, seed=1)
    data = report.to_json()
    assert report.status == "done" and data["target"] == "7" and data["target_kind"] == "gold"
    assert [s["index"] for s in data["steps"]] == [1, 2, 3]
    for step in data["steps"]:
        assert sum(step["answers"].values()) == 2 and 0.0 <= step["share_gold"] <= 1.0
        assert step["importance"] is not None and step["branch_run_id"] is not None
        branch = rt.db.get_run(step["branch_run_id"])
        assert len(branch.samples) == 2 and all(s.thinking_tokens <= 24 for s in branch.samples)
    assert sum(data["from_prompt"]["answers"].values()) == 2
    settings = GenerationSettings(min_thinking_tokens=6, max_thinking_tokens=6, max_answer_tokens=6)
    saved = [e for e in stream_think_longer(rt, run_id, 0, settings=settings) if isinstance(e, Saved)][-1]
    longer = saved.result.samples[0]
    assert longer.thinking.startswith("First, 3 + 4 = 7.\nSo the answer is 7.\nWait")
    assert longer.thinking_tokens == _count(remote_engine, "First, 3 + 4 = 7.\nSo the answer is 7.\nWait") + 6
