"""Budget forcing: the processor's rules on scripted scores, then on real generate() with the tiny model."""

from __future__ import annotations

import pytest
import torch

from app.domain import GenerationSettings
from app.engine.budget import BudgetPlan, ThinkingBudgetProcessor
from app.engine.special_tokens import stop_token_ids


def _plan(tok, **kw) -> BudgetPlan:
    args = dict(
        thinking=True,
        max_thinking=20,
        min_thinking=0,
        max_continuations=8,
        max_answer=5,
        close_tag="</think>",
        continuation="Wait",
        answer_cue="Final Answer:",
        stop_ids=stop_token_ids(tok),
    )
    args.update(kw)
    return BudgetPlan.build(tok, **args)


def _drive(tok, plan: BudgetPlan, prefer: int, steps: int = 80) -> ThinkingBudgetProcessor:
    """A scripted 'model' whose favourite token is always ``prefer``; greedy decoding."""
    vocab = len(tok)
    proc = ThinkingBudgetProcessor(plan, tok, batch_size=1, prompt_length=1)
    ids = torch.zeros((1, 1), dtype=torch.long)
    filler = tok.encode(" so", add_special_tokens=False)[0]
    for _ in range(steps):
        scores = torch.zeros((1, vocab))
        scores[0, filler] = 5.0
        scores[0, prefer] = 10.0
        out = proc(ids, scores)
        nxt = int(out.argmax(-1))
        ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
        if proc.rows[0].phase == "done" or (nxt in plan.stop_ids and proc.rows[0].phase == "answer"):
            proc.sync(ids)
            break
    proc.sync(ids)
    return proc


@pytest.fixture(scope="module")
def tok(smol_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smol_tokenizer_dir)


def test_plan_validates_arguments(tok):
    with pytest.raises(ValueError, match="min_thinking=30 exceeds max_thinking=20"):
        _plan(tok, min_thinking=30)
    with pytest.raises(ValueError, match="max_answer=0"):
        _plan(tok, max_answer=0)


def test_eos_while_thinking_is_replaced_by_end_delimiter_and_cue(tok):
    eos = tok.eos_token_id
    proc = _drive(tok, _plan(tok), prefer=eos)
    row = proc.rows[0]
    text = tok.decode(row.ids)
    assert row.thinking_tokens == 0 and "</think>" in text
    assert "Final Answer:" in text.split("</think>")[1]
    assert row.phase == "done" and not row.cut


def test_attempts_to_stop_below_minimum_become_wait(tok):
    eos = tok.eos_token_id
    proc = _drive(tok, _plan(tok, min_thinking=10, max_thinking=40), prefer=eos)
    row = proc.rows[0]
    thinking = tok.decode(row.ids).split("</think>")[0]
    assert thinking.count("Wait") == row.continuations == 5  # "\nWait" is 2 tokens: 5 of them reach 10
    assert row.thinking_tokens == 10


def test_continuations_are_capped_then_the_model_may_stop(tok):
    proc = _drive(tok, _plan(tok, min_thinking=15, max_thinking=40, max_continuations=2), prefer=tok.eos_token_id)
    row = proc.rows[0]
    assert row.continuations == 2 and row.thinking_tokens == 4 and row.phase == "done"


def test_budget_cut_is_exact_and_forces_the_answer(tok):
    filler = tok.encode(" so", add_special_tokens=False)[0]
    proc = _drive(tok, _plan(tok, max_thinking=20, max_answer=6), prefer=filler)
    row = proc.rows[0]
    assert row.cut and row.thinking_tokens == 20
    assert row.answer_tokens == 6 and row.answer_capped


def test_natural_close_tag_switches_to_answer_without_counting_the_tag(tok):
    close = tok.encode("</think>", add_special_tokens=False)
    plan = _plan(tok, max_thinking=50)
    proc = ThinkingBudgetProcessor(plan, tok, batch_size=1, prompt_length=0)
    thinking = tok.encode("I think it is 4.\n", add_special_tokens=False)
    proc.sync(torch.tensor([thinking + close]))
    row = proc.rows[0]
    assert row.phase == "answer" and row.thinking_tokens == len(thinking)


# -- on a real (tiny, random) Qwen3 through model.generate ------------------------------------------


@pytest.mark.parametrize("budget", [1, 7, 33])
def test_thinking_never_exceeds_the_budget_on_a_real_model(tiny_engine, budget):
    settings = GenerationSettings(max_thinking_tokens=budget, max_answer_tokens=8, samples=3, temperature=1.0, seed=3)
    result = tiny_engine.generate("What is 2+2?", settings)
    for s in result.samples:
        assert s.thinking_tokens <= budget
        assert s.answer  # every sample ends with an answer


def test_min_and_max_equal_gives_exactly_that_many_tokens(tiny_engine):
    settings = GenerationSettings(min_thinking_tokens=25, max_thinking_tokens=25, max_answer_tokens=4)
    sample = tiny_engine.generate("hi", settings).samples[0]
    assert sample.thinking_tokens == 25 and sample.stop_reason == "budget_cut"


def test_real_model_that_wants_to_stop_is_kept_thinking_with_wait(eager_stopper):
    settings = GenerationSettings(min_thinking_tokens=12, max_thinking_tokens=30, max_answer_tokens=5)
    sample = eager_stopper.generate("hi", settings).samples[0]
    assert sample.thinking.count("Wait") == sample.continuations == 6
    assert sample.thinking_tokens == 12
    assert sample.answer.startswith("Final Answer:")


def test_no_think_gives_empty_thinking(tiny_engine):
    sample = tiny_engine.generate("hi", GenerationSettings(thinking=False, max_answer_tokens=6)).samples[0]
    assert sample.thinking == "" and sample.thinking_tokens == 0 and sample.answer_tokens <= 6
