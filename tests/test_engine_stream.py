"""Streaming events, cancelling and seeded batched sampling.

The event-order, stats and cancel checks run on both engines (``stream_engine``): the tiny model in
process, and the bundled model on a real ``transformers serve``.
"""

from __future__ import annotations

import threading
import time

import pytest

from app.domain import GenerationSettings
from app.engine.events import AnswerDelta, CancelToken, Finished, PhaseChange, Progress, ThinkingDelta
from app.engine.trace_text import split_text


@pytest.fixture(params=["local", "remote"])
def stream_engine(request):
    return request.getfixturevalue("tiny_engine" if request.param == "local" else "remote_engine")


def test_deltas_add_up_to_the_final_text_in_order(stream_engine):
    settings = GenerationSettings(max_thinking_tokens=30, max_answer_tokens=10, samples=2, temperature=1.0, seed=0)
    events = list(stream_engine.stream("Explain 3*4", settings))
    assert isinstance(events[-1], Finished)
    result = events[-1].result
    for i, sample in enumerate(result.samples):
        mine = [e for e in events if getattr(e, "sample", None) == i]
        thinking = "".join(e.text for e in mine if isinstance(e, ThinkingDelta))
        answer = "".join(e.text for e in mine if isinstance(e, AnswerDelta))
        assert thinking.strip() == sample.thinking
        assert answer.strip() == sample.answer
        kinds = [type(e).__name__ for e in mine]
        assert kinds.index("ThinkingDelta") < mine.index(PhaseChange(i, "answer")) < kinds.index("AnswerDelta")
        assert mine[-1] == PhaseChange(i, "done")
    assert any(isinstance(e, Progress) for e in events)
    assert not any(isinstance(e, Finished) for e in events[:-1])


def test_stats_are_filled(stream_engine):
    s = stream_engine.generate("hi", GenerationSettings(max_thinking_tokens=10, max_answer_tokens=5)).samples[0]
    assert s.time_to_first_token is not None and 0 < s.time_to_first_token <= s.seconds
    assert s.thinking_seconds is not None and s.thinking_seconds <= s.seconds
    assert s.tokens_per_second > 0
    assert s.raw_text.count("</think>") == 1


def test_same_seed_same_samples_different_seed_different(tiny_engine):
    settings = GenerationSettings(max_thinking_tokens=20, max_answer_tokens=8, samples=4, temperature=1.0, seed=1)
    a = [s.raw_text for s in tiny_engine.generate("x", settings).samples]
    b = [s.raw_text for s in tiny_engine.generate("x", settings).samples]
    c = [s.raw_text for s in tiny_engine.generate("x", settings.with_(seed=2)).samples]
    assert a == b and a != c
    assert len(set(a)) > 1  # the k rows of one batch are different samples


def test_cancel_stops_within_a_few_tokens_and_keeps_the_text(stream_engine):
    cancel = CancelToken()
    settings = GenerationSettings(max_thinking_tokens=4000, min_thinking_tokens=4000, max_answer_tokens=10)
    seen = 0
    started = time.perf_counter()
    result = None
    for event in stream_engine.stream("count forever", settings, cancel):
        if isinstance(event, ThinkingDelta):
            seen += 1
            if seen == 5:
                cancel.cancel()
        if isinstance(event, Finished):
            result = event.result
    sample = result.samples[0]
    assert sample.stop_reason == "cancelled"
    assert 0 < sample.thinking_tokens < 40 and sample.raw_text  # what was generated is kept
    assert time.perf_counter() - started < 20


def test_cancel_from_another_thread(stream_engine):
    cancel = CancelToken()
    threading.Timer(1.0, cancel.cancel).start()
    settings = GenerationSettings(max_thinking_tokens=20000, min_thinking_tokens=20000, max_answer_tokens=5)
    result = stream_engine.generate("go", settings, cancel)
    assert result.samples[0].stop_reason == "cancelled"


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match="min_thinking_tokens=50 is larger than max_thinking_tokens=10"):
        GenerationSettings(min_thinking_tokens=50, max_thinking_tokens=10).validate()
    with pytest.raises(ValueError, match="effort='huge'"):
        GenerationSettings(effort="huge").validate()  # type: ignore[arg-type]


def test_split_holds_back_a_partial_close_tag_while_streaming():
    assert split_text("abc</thi", "<think>", "</think>", True, final=False) == ("abc", "")
    assert split_text("abc</think>ans", "<think>", "</think>", True, final=False) == ("abc", "ans")
    assert split_text("plain", "<think>", "</think>", False, final=False) == ("", "plain")


def test_loading_and_generation_run_on_the_one_model_thread(tiny_engine):
    """A second OpenMP pool slows every CPU decode step (see app.engine.torch_thread): one thread does it all."""
    from app.engine.torch_thread import on_torch_thread

    seen = []
    handle = tiny_engine.model.register_forward_hook(lambda *_: seen.append(on_torch_thread()))
    try:
        tiny_engine.generate("hi", GenerationSettings(max_thinking_tokens=3, max_answer_tokens=2))
    finally:
        handle.remove()
    assert seen and all(seen)
    assert not on_torch_thread()  # the caller is not blocked inside it


def test_a_finished_run_leaves_no_tensor_for_the_cycle_collector(tiny_engine):
    """The engine does not run gc.collect() after a run (0.15-0.2 s in the app's process), so nothing it made
    may wait on one: every tensor of a run (KV cache, logits, captured token data) must be freed by reference
    counting alone, for finished, sampled, batched and cancelled runs."""
    import gc

    import torch

    gc.collect()
    gc.disable()
    try:
        tiny_engine.generate("hi", GenerationSettings(max_thinking_tokens=12, max_answer_tokens=4))
        tiny_engine.generate(
            "hi", GenerationSettings(max_thinking_tokens=12, max_answer_tokens=4, samples=3, temperature=1.0, seed=0)
        )
        cancel = CancelToken()
        for event in tiny_engine.stream("hi", GenerationSettings(max_thinking_tokens=40), cancel):
            if isinstance(event, Progress) and event.tokens >= 3:
                cancel.cancel()
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, torch.Tensor)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == [], f"{len(left)} tensors were only reachable through reference cycles"
