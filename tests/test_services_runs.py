"""Running a prompt through the service: every run is saved -- finished, cancelled and failed alike."""

from __future__ import annotations

import pytest

from app.domain import GenerationSettings
from app.engine.events import CancelToken, Finished, ThinkingDelta
from app.services.runs import Saved, run_prompt, stream_run


def test_finished_run_is_saved_with_steps_and_extracted_answers(tiny_runtime):
    saved = run_prompt(
        tiny_runtime,
        "What is 6*7?",
        GenerationSettings(max_thinking_tokens=20, max_answer_tokens=6, samples=2, temperature=1.0, seed=4),
    )
    run = tiny_runtime.store.get_run(saved.run_id)
    assert run.status == "done" and run.prompt == "What is 6*7?" and len(run.samples) == 2
    assert run.settings.samples == 2 and run.seed == 4
    for stored, sample in zip(run.samples, saved.result.samples, strict=True):
        assert stored.raw_text == sample.raw_text and stored.thinking_tokens == sample.thinking_tokens
        assert stored.steps, "steps are segmented at save time, ready for annotation"


def test_cancelled_run_is_saved_with_what_was_generated(tiny_runtime):
    cancel = CancelToken()
    saved = None
    for event in stream_run(tiny_runtime, "go on", GenerationSettings(max_thinking_tokens=5000), cancel):
        if isinstance(event, ThinkingDelta):
            cancel.cancel()
        if isinstance(event, Saved):
            saved = event
    run = tiny_runtime.store.get_run(saved.run_id)
    assert run.status == "cancelled" and run.samples[0].stop_reason == "cancelled"
    assert run.samples[0].raw_text


def test_failed_run_is_saved_with_the_error(tiny_runtime):
    # A conversation the format can't render (it must end with the user) fails inside the engine.
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "dangling"}]
    events = list(stream_run(tiny_runtime, messages, GenerationSettings()))
    finished = next(e for e in events if isinstance(e, Finished))
    saved = events[-1]
    assert isinstance(saved, Saved) and "user message" in finished.result.error
    run = tiny_runtime.store.get_run(saved.run_id)
    assert run.status == "error" and "user message" in run.error


def test_empty_prompt_and_bad_settings_are_refused_before_running(tiny_runtime):
    before = tiny_runtime.store.count_runs()
    with pytest.raises(ValueError, match="prompt is empty"):
        list(stream_run(tiny_runtime, "   ", GenerationSettings()))
    with pytest.raises(ValueError, match="max_answer_tokens=0"):
        list(stream_run(tiny_runtime, "hi", GenerationSettings(max_answer_tokens=0)))
    assert tiny_runtime.store.count_runs() == before


def test_chat_context_leaves_earlier_thinking_out_by_default():
    from app.services.chat import chat_context

    turns = [("q1", "thought 1", "a1"), ("q2", "thought 2", ""), ("q3", "", "a3")]
    messages = chat_context(turns, "q4", keep_thinking=False)
    assert [m["content"] for m in messages] == ["q1", "a1", "q3", "a3", "q4"]
    kept = chat_context(turns, "q4", keep_thinking=True)
    assert kept[1]["content"] == "<think>\nthought 1\n</think>\n\na1"


def test_a_failed_save_still_hands_back_the_trace(tiny_runtime):
    import sqlalchemy as sa

    with tiny_runtime.store.engine.begin() as conn:  # the database loses its tables under our feet
        conn.execute(sa.text("PRAGMA foreign_keys = OFF"))
        conn.execute(sa.text("DROP TABLE samples"))
    saved = run_prompt(tiny_runtime, "hi", GenerationSettings(max_thinking_tokens=5, max_answer_tokens=3))
    assert saved.run_id is None and "could not be saved" in saved.save_error
    assert saved.result.samples[0].raw_text
