"""Continuing a trace prefix: the budget counts the prefix, N rollouts batch with the prefix's KV cache reused,
"Stop thinking now" (user_cut) and "Think longer" (fresh budget), on the tiny model through model.generate."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from app.domain import GenerationSettings, TracePrefix
from app.engine.events import Finished, Progress, RolloutBatch, SteerToken, ThinkingDelta

PROMPT = "What is 3 + 4?"
STEPS = "Let me think about this problem.\nFirst, 3 + 4 = 7.\nThen 7 * 2 = 14.\n"


def _rollouts(engine, prefixes, settings, n, **kw) -> RolloutBatch:
    items = list(engine.stream_rollouts(PROMPT, prefixes, settings, n, **kw))
    assert isinstance(items[-1], RolloutBatch)
    assert all(isinstance(item, Progress) for item in items[:-1])
    return items[-1]


def test_reused_prefix_cache_gives_the_same_tokens_as_encoding_every_row(tiny_engine):
    prefixes = [TracePrefix(thinking=STEPS[:33]), TracePrefix(thinking=STEPS), TracePrefix(thinking="")]
    settings = GenerationSettings(max_thinking_tokens=60, max_answer_tokens=6, temperature=0.0)
    reused = _rollouts(tiny_engine, prefixes, settings, 2, reuse_cache=True)
    plain = _rollouts(tiny_engine, prefixes, settings, 2, reuse_cache=False)
    assert reused.reused_cache and not plain.reused_cache
    for a_group, b_group in zip(reused.samples, plain.samples, strict=True):
        assert [s.raw_text for s in a_group] == [s.raw_text for s in b_group]
    # each row equals a single, unbatched continuation of its own prefix
    single = tiny_engine.generate(PROMPT, settings, prefix=prefixes[1]).samples[0]
    assert reused.samples[1][0].raw_text == single.raw_text
    assert reused.samples[1][0].thinking.startswith(STEPS.strip())


def test_seeded_sampled_rollouts_draw_as_a_seeded_run_does(tiny_engine):
    """Rollouts sample through the same chain as a run (on a CPU: the engine's own top-p and draw), so one
    seeded rollout of a prefix is token for token the seeded run continuing that prefix."""
    from app.engine.decode import decoding_kwargs
    from app.engine.sampling import Draw, TopP

    settings = GenerationSettings(max_thinking_tokens=40, max_answer_tokens=6, temperature=0.9, top_p=0.9, seed=7)
    chain = decoding_kwargs(object(), settings, tiny_engine.model.device)["logits_processor"]
    assert isinstance(chain[-1], Draw) and any(isinstance(p, TopP) for p in chain)
    prefix = TracePrefix(thinking=STEPS[:33])
    rolled = _rollouts(tiny_engine, [prefix], settings, 1, reuse_cache=False).samples[0][0]
    run = tiny_engine.generate(PROMPT, settings, prefix=prefix).samples[0]
    assert rolled.raw_text == run.raw_text
    other = _rollouts(tiny_engine, [prefix], replace(settings, seed=8), 1, reuse_cache=False)
    assert other.samples[0][0].raw_text != rolled.raw_text  # the seed is what made them agree


def test_the_prefix_thinking_counts_against_the_budget(tiny_engine):
    tok = tiny_engine.tokenizer
    used = len(tok.encode(STEPS, add_special_tokens=False))
    settings = GenerationSettings(max_thinking_tokens=used + 5, max_answer_tokens=4, temperature=1.0, seed=1)
    batch = _rollouts(tiny_engine, [TracePrefix(thinking=STEPS)], settings, 3)
    for sample in batch.samples[0]:
        assert used <= sample.thinking_tokens <= used + 5
        assert sample.thinking.startswith(STEPS.strip())
    over = GenerationSettings(max_thinking_tokens=used - 3, max_answer_tokens=4)
    sample = _rollouts(tiny_engine, [TracePrefix(thinking=STEPS)], over, 1).samples[0][0]
    assert sample.stop_reason == "budget_cut" and sample.thinking_tokens == used  # cut at once, nothing added


def test_a_prefix_inside_the_answer_continues_the_answer(tiny_engine):
    settings = GenerationSettings(max_thinking_tokens=40, max_answer_tokens=5)
    prefix = TracePrefix(thinking=STEPS, answer="The answer is")
    sample = tiny_engine.generate(PROMPT, settings, prefix=prefix).samples[0]
    assert sample.thinking == STEPS.strip()
    assert sample.answer.startswith("The answer is")
    assert 3 <= sample.answer_tokens <= 5


def test_bad_rollout_requests_are_refused(tiny_engine):
    settings = GenerationSettings()
    with pytest.raises(ValueError, match="n=0 rollouts"):
        list(tiny_engine.stream_rollouts(PROMPT, [TracePrefix()], settings, 0))
    with pytest.raises(ValueError, match="no prefixes"):
        list(tiny_engine.stream_rollouts(PROMPT, [], settings, 2))


def test_stop_thinking_now_ends_thinking_within_two_tokens(tiny_engine):
    steer = SteerToken()
    settings = GenerationSettings(max_thinking_tokens=400, min_thinking_tokens=300, max_answer_tokens=5)
    thinking_at_request = None
    result = None
    for event in tiny_engine.stream(PROMPT, settings, steer=steer):
        if isinstance(event, Progress) and event.tokens >= 10 and thinking_at_request is None:
            thinking_at_request = event.tokens
            steer.stop_thinking()
        if isinstance(event, Finished):
            result = event.result
    sample = result.samples[0]
    assert sample.stop_reason == "user_cut"
    # the request lands between two decoding steps; the close tag starts at the latest one token later
    assert sample.thinking_tokens <= thinking_at_request + 2
    assert sample.answer.startswith("Final Answer:")


def test_think_longer_resumes_with_the_continuation_and_a_fresh_budget(tiny_engine):
    settings = GenerationSettings(max_thinking_tokens=8, max_answer_tokens=4)
    prefix = TracePrefix(thinking=STEPS + "Wait", fresh_budget=True)
    used = len(tiny_engine.tokenizer.encode(STEPS + "Wait", add_special_tokens=False))
    deltas = []
    result = None
    for event in tiny_engine.stream(PROMPT, settings, prefix=prefix):
        if isinstance(event, ThinkingDelta):
            deltas.append(event.text)
        elif isinstance(event, Finished):
            result = event.result
    sample = result.samples[0]
    assert sample.thinking.startswith(STEPS + "Wait")
    assert sample.thinking_tokens == used + 8 and sample.stop_reason == "budget_cut"  # 8 new tokens, not 8 total
    assert "".join(deltas).strip() == sample.thinking


def test_steer_token_is_thread_safe_flag():
    steer = SteerToken()
    threading.Thread(target=steer.stop_thinking).start()
    for _ in range(100):
        if steer.stop_requested:
            break
        threading.Event().wait(0.01)
    assert steer.stop_requested
