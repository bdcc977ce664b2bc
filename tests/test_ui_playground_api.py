"""The Playground and History through gradio_client, against the real app on a free loopback port.

The app runs the tiny random model (fast, useless answers) over a real SQLite file; one test uses the
bundled SmolLM2-135M. The render helpers and the controls->settings adapter are pinned first.
"""

from __future__ import annotations

import html

import gradio as gr
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from ui_support import wait_until

from app.domain import GenerationSettings, SampleResult
from app.ui.playground_run import CONTROLS, Chat, Turn, playground_settings
from app.ui.render import header_markdown, safe_text, stats_markdown, stop_reason_words, trace_messages
from app.ui.running import CancelRegistry

# Thinking off the end delimiter for ``n`` tokens (min = max), sampled so the tiny model writes visible text.
LONG = {"effort": "custom", "temperature": 0.8, "seed": 1, "max_answer_tokens": 16}


def _sample(**changes) -> SampleResult:
    base = dict(
        index=0,
        raw_text="",
        thinking="<img src=x onerror=alert(1)> so 2+2",
        answer="**4** <script>alert(1)</script>",
        thinking_tokens=256,
        answer_tokens=12,
        stop_reason="budget_cut",
        seconds=5.0,
        time_to_first_token=0.2,
        thinking_seconds=4.04,
        tokens_per_second=18.2,
    )
    return SampleResult(**{**base, **changes})


def _thought(messages: list[dict]) -> dict:
    return next(m for m in messages if (m.get("metadata") or {}).get("title"))


def _text(message: dict) -> str:
    """The text a reader sees: the message's markdown with safe_text's entities turned back into characters."""
    return html.unescape("".join(part.get("text", "") for part in message["content"]))


# --- pure helpers ---------------------------------------------------------------------------------


def test_safe_text_shows_html_and_markdown_as_written():
    assert safe_text("<b>x</b> **b** & $$x$$") == (
        "&#60;b&#62;x&#60;&#47;b&#62; &#42;&#42;b&#42;&#42; &#38; &#36;&#36;x&#36;&#36;"
    )
    assert safe_text("${7*7}") == "&#36;&#123;7&#42;7&#125;"  # was "${77}": the * made emphasis
    assert safe_text(None) == ""


def test_safe_text_shows_code_as_written_and_never_as_markup():
    assert safe_text("use `a < b` now") == "use <code>a &#60; b</code> now"
    fenced = safe_text("see\n```html\n<img src=x onerror=f()>\n```\ndone <b>")
    assert fenced == "see\n<pre><code>&#60;img src&#61;x onerror&#61;f&#40;&#41;&#62;</code></pre>\ndone &#60;b&#62;"
    assert safe_text("```\nstill <i>streaming") == "<pre><code>still &#60;i&#62;streaming</code></pre>"
    assert safe_text("\\`not code <a>\\`") == "&#92;&#96;not code &#60;a&#62;&#92;&#96;"
    assert safe_text("`open\n\nnever <u>closed`") == "&#96;open\n\nnever &#60;u&#62;closed&#96;"
    # Whatever the input, the only raw "<" in the output are the tags safe_text writes itself.
    for text in ("``a`<img src=x>`", "`<x>``<y>`", "~~~\n<z>\n~~~~ <w>", "```a`b\n<v>\n```"):
        out = safe_text(text)
        for tag in ("<pre>", "<code>", "</code>", "</pre>"):
            out = out.replace(tag, "")
        assert "<" not in out and ">" not in out, text


def test_stop_reasons_read_as_words():
    settings = GenerationSettings(effort="low", max_answer_tokens=64)
    assert stop_reason_words(_sample(), settings) == "cut by budget at 256 tokens"
    assert stop_reason_words(_sample(stop_reason="max_tokens"), settings) == "hit the answer limit of 64 tokens"
    assert "cancelled" in stop_reason_words(_sample(stop_reason="cancelled"))
    assert "boom" in stop_reason_words(_sample(stop_reason="error", error="boom"))
    line = stats_markdown(_sample(), settings)
    for part in ("**256** thinking tokens", "**12** answer tokens", "first token 0.20 s", "thought 4.04 s", "18.2"):
        assert part in line


def test_trace_is_an_open_block_while_thinking_and_a_closed_one_after():
    pending = trace_messages(_sample(answer=""), pending=True)
    assert [m.metadata.get("status") for m in pending] == ["pending"]
    done = trace_messages(_sample(), stats=True)
    assert done[0].metadata == {"title": "Thought for 4.0 s · 256 tokens", "status": "done"}
    assert done[0].content.startswith("&#60;img") and "&#60;script&#62;" in done[1].content
    assert "cut by budget" in done[2].content
    assert not any(m.metadata for m in trace_messages(_sample(thinking="", thinking_tokens=0)))


def test_header_says_plainly_when_the_model_is_a_small_demo():
    info = {"model": "SmolLM2 <b>", "format": "prompted", "device": "cpu", "quantization": "none", "source": "bundled"}
    text = header_markdown({**info, "small_demo": True, "trained_to_think": False})
    assert "SmolLM2 &#60;b&#62;" in text and "CPU" in text and "--model Qwen/Qwen3-4B" in text
    assert "never trained to reason" in text
    assert "fp32" not in text  # no precision known: not guessed
    cuda = header_markdown({**info, "device": "cuda:0", "source": "hub", "small_demo": False, "precision": "nf4"})
    assert "CUDA" in cuda and "NF4 (bitsandbytes 4-bit)" in html.unescape(cuda) and "Small demo" not in cuda
    assert "**precision** bf16" in header_markdown({**info, "precision": "bf16"})


def build_settings(*values):
    """The Playground's controls, in :data:`CONTROLS` order, as its events read them."""
    return playground_settings(dict(zip(CONTROLS, values, strict=True)))


def test_controls_become_validated_settings():
    preset = build_settings(True, "medium", 5, 3, "Hmm", 128, 0.5, 0.9, -1)
    assert preset.effort == "medium" and preset.max_thinking_tokens is None and preset.seed is None
    custom = build_settings(True, "custom", 300, 100, "Hmm", 128, 0, 0.9, 7)
    assert (custom.effort, custom.resolved_budget(), custom.continuation, custom.seed) == (None, (300, 100), "Hmm", 7)
    with pytest.raises(gr.Error, match="min_thinking_tokens=400"):
        build_settings(True, "custom", 300, 400, "Wait", 128, 0, 0.9, None)
    with pytest.raises(gr.Error, match="top_p"):
        build_settings(True, "low", None, None, "Wait", 128, 0, 0, None)
    with pytest.raises(gr.Error, match="a custom budget needs max thinking tokens"):
        build_settings(True, "custom", None, None, "Wait", 128, 0, 0.9, None)
    with pytest.raises(gr.Error, match="effort='huge' is not one of low, medium, high, custom"):
        build_settings(True, "huge", None, None, "Wait", 128, 0, 0.9, None)


def test_zero_answer_tokens_is_refused_not_replaced_by_a_default():
    with pytest.raises(gr.Error, match="max_answer_tokens=0 must be >= 1"):
        build_settings(True, "low", None, None, "Wait", 0, 0, 0.9, None)
    assert build_settings(True, "low", None, None, "Wait", None, 0, 0.9, None).max_answer_tokens == 256
    with pytest.raises(gr.Error, match="max answer tokens must be a whole number, got 'lots'"):
        build_settings(True, "low", None, None, "Wait", "lots", 0, 0.9, None)


def test_the_cli_flags_and_the_playground_build_the_same_settings():
    """One builder: the same raw values through the CLI's flags and the Playground's controls agree."""
    from app.cli import build_parser, generation_settings

    cases = [
        (["--effort", "medium"], (True, "medium", None, None, "Wait", None, None, None, None)),
        (
            ["--no-think", "--continuation", "Hmm", "--max-answer-tokens", "64", "--temperature", "0.5",
             "--top-p", "0.9", "--seed", "7"],
            (False, "low", None, None, "Hmm", 64, 0.5, 0.9, 7),
        ),
        (["--effort", "high", "--seed", "-1"], (True, "high", None, None, "", "", "", "", -1)),
    ]  # fmt: skip
    for flags, controls in cases:
        args = build_parser().parse_args(["generate", "q", *flags])
        assert (
            generation_settings(args)
            == build_settings(*controls)
            == playground_settings({name: getattr(args, name) for name in CONTROLS})
        )
    defaults = build_parser().parse_args(["generate", "q"])
    assert generation_settings(defaults) == GenerationSettings()  # every flag's default is the field's


def test_examples_are_the_sweeps_bundled_problems():
    from app.services.inputs import load_examples, load_problems

    first = load_problems("bundled", limit=1)[0]
    assert load_examples(limit=1) == [{"question": first.question, "answer": first.solution, "final": first.gold}]


def test_earlier_thinking_is_left_out_of_the_context_unless_asked():
    chat = Chat().add(Turn("q1", _sample(thinking="t1", answer="a1"), GenerationSettings(), 1))
    chat = chat.add(Turn("q2", None, GenerationSettings(), 2, error="boom"))  # failed turns are skipped
    assert chat.context("q3", keep_thinking=False, open_tag="<think>", close_tag="</think>") == [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q3"},
    ]
    kept = chat.context("q3", keep_thinking=True, open_tag="<think>", close_tag="</think>")
    assert kept[1]["content"] == "<think>\nt1\n</think>\n\na1"


def test_cancel_registry_stops_queued_and_running_runs_of_one_session_only():
    registry = CancelRegistry()
    queued = registry.prepare("a")
    assert registry.cancel("a") == 1 and queued.cancelled  # a run still waiting in the queue counts
    assert registry.cancel("a") == 0  # already stopping
    assert registry.begin("a") is queued  # ... and starts cancelled, so it stops before it runs
    registry.end("a", queued)
    running, other = registry.begin("a"), registry.begin("b")
    assert registry.cancel("a") == 1 and running.cancelled and not other.cancelled
    registry.end("a", running)
    assert registry.running("a") == 0 and registry.running("b") == 1


# --- the real app ---------------------------------------------------------------------------------


def test_every_action_is_a_named_endpoint(fresh_client):
    names = set(fresh_client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    for name in ("generate", "cancel", "new_chat", "examples", "list_history", "get_run", "delete_run"):
        assert f"/{name}" in names


def test_only_the_run_writes_its_status_line(fresh_client):
    """Stop and "Stop thinking now" answer elsewhere: the status line is written by the run's own stream
    ("Stopping…", then the saved run), so a Stop answered after the run's last update on a busy server can't
    leave "Stopping…" up for good (was: Stop wrote "Stopping…" there, racing the run's final state)."""
    config = fresh_client.config
    stats = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "playground-stats")
    writers = {d.get("api_name") for d in config["dependencies"] if stats in d.get("outputs", [])}
    assert not writers & {"cancel", "stop_thinking"}
    assert "generate" in writers


def test_generate_streams_thinking_then_the_answer_and_saves_the_run(fresh_client, tiny_app):
    rt = tiny_app[0]
    job = fresh_client.submit(
        prompt="stream probe", max_thinking_tokens=96, min_thinking_tokens=96, **LONG, api_name="/generate"
    )
    chat, status, run = job.result(timeout=120)
    statuses = [(_thought(out[0]).get("metadata") or {}).get("status") for out in job.outputs() if len(out[0]) > 1]
    assert "pending" in statuses, "the thinking block never streamed while open"
    assert statuses[-1] == "done"
    assert _text(chat[0]) == "stream probe"
    thought = _thought(chat)
    assert thought["metadata"]["title"].startswith("Thought for ") and "96 tokens" in thought["metadata"]["title"]
    assert _text(thought).strip() and _text(chat[2]).startswith("Final Answer:")
    assert "cut by budget at 96 tokens" in _text(chat[3]) and f"run #{run['run_id']}" in status
    stored = rt.store.get_run(run["run_id"])
    assert stored.kind == "playground" and stored.samples[0].stop_reason == "budget_cut"
    assert stored.samples[0].thinking == run["samples"][0]["thinking"]


def test_multi_turn_context_leaves_earlier_thinking_out_by_default(fresh_client, tiny_app):
    rt = tiny_app[0]
    small = {"effort": "custom", "max_thinking_tokens": 8, "max_answer_tokens": 8, "temperature": 0.8, "seed": 2}
    first = fresh_client.predict(prompt="turn one", **small, api_name="/generate")[2]
    second = fresh_client.predict(prompt="turn two", **small, api_name="/generate")
    assert [_text(m) for m in second[0] if m["role"] == "user"] == ["turn one", "turn two"]
    messages = rt.store.get_run(second[2]["run_id"]).messages
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == first["samples"][0]["answer"] and "<think>" not in messages[1]["content"]

    fresh_client.predict(api_name="/new_chat")
    fresh_client.predict(prompt="keep one", leave_out_thinking=False, **small, api_name="/generate")
    kept = fresh_client.predict(prompt="keep two", leave_out_thinking=False, **small, api_name="/generate")[2]
    messages = rt.store.get_run(kept["run_id"]).messages
    assert messages[0]["content"] == "keep one" and messages[1]["content"].startswith("<think>")


def test_cancel_stops_soon_and_keeps_what_was_generated(fresh_client, tiny_app, load):
    rt = tiny_app[0]
    job = fresh_client.submit(
        prompt=f"cancel probe {load}", max_thinking_tokens=4000, min_thinking_tokens=4000, **LONG, api_name="/generate"
    )
    wait_until(
        lambda: any(len(o[0]) > 1 and _text(_thought(o[0])).strip("… ") for o in job.outputs()),
        what="thinking text to stream",
    )
    assert fresh_client.predict(api_name="/cancel") == "Stopping…"
    _chat, status, run = job.result(timeout=60)
    sample = run["samples"][0]
    assert sample["stop_reason"] == "cancelled" and sample["thinking"] and sample["thinking_tokens"] < 4000
    assert "stopped by you" in status
    stored = rt.store.get_run(run["run_id"])
    assert stored.status == "cancelled" and stored.samples[0].thinking == sample["thinking"]
    assert fresh_client.predict(api_name="/cancel") == "Nothing is running."


def test_history_lists_filters_opens_and_deletes_runs(fresh_client):
    run = fresh_client.predict(prompt="history probe 4711", max_answer_tokens=4, thinking=False, api_name="/generate")[
        2
    ]
    run_id = run["run_id"]
    table = fresh_client.predict(search="probe 4711", model="any", stop_reason="any", api_name="/list_history")
    assert [row[0] for row in table["data"]] == [run_id]
    assert table["headers"][:4] == ["run", "date", "model", "prompt"]
    reason = run["samples"][0]["stop_reason"]
    assert fresh_client.predict("probe 4711", "any", reason, api_name="/list_history")["data"]
    assert not fresh_client.predict("probe 4711", "any", "cancelled", api_name="/list_history")["data"]

    chat, details, record = fresh_client.predict(run_id, api_name="/get_run")
    assert _text(chat[0]) == "history probe 4711" and f"Run #{run_id}" in details
    assert record["samples"][0]["answer"] == run["samples"][0]["answer"]

    message, table = fresh_client.predict(run_id, api_name="/delete_run")
    assert message == f"Deleted run #{run_id}." and run_id not in [row[0] for row in table["data"]]
    with pytest.raises(AppError, match="was deleted"):
        fresh_client.predict(run_id, api_name="/get_run")


def test_bad_settings_and_empty_prompts_are_clear_errors(fresh_client):
    with pytest.raises(AppError, match="min_thinking_tokens=50 is larger"):
        fresh_client.predict(
            prompt="x", effort="custom", max_thinking_tokens=10, min_thinking_tokens=50, api_name="/generate"
        )
    with pytest.raises(AppError, match="prompt is empty"):
        fresh_client.predict(prompt="  ", api_name="/generate")


def test_examples_are_gsm8k_problems(fresh_client):
    examples = fresh_client.predict(api_name="/examples")
    assert len(examples) >= 10 and {"question", "answer", "final"} <= set(examples[0])


@pytest.mark.bundled
def test_bundled_model_header_and_a_short_run(bundled_app):
    rt, url = bundled_app
    client = Client(url, verbose=False)
    header = next(c for c in client.config["components"] if c.get("props", {}).get("elem_id") == "tracelab-header")
    text = header["props"]["value"]
    assert "SmolLM2-135M" in text and "never trained to reason" in text and "--model Qwen/Qwen3-4B" in text
    chat, status, run = client.predict(
        prompt="What is 12 + 30?",
        effort="custom",
        max_thinking_tokens=12,
        max_answer_tokens=12,
        api_name="/generate",
    )
    sample = run["samples"][0]
    assert run["model"] == rt.loaded.name and sample["thinking_tokens"] <= 12
    assert sample["answer"] and "Saved as run" in status
    assert _thought(chat)["metadata"]["status"] == "done"


def test_stop_while_the_prompt_waits_in_the_queue_stops_it_before_it_runs(tiny_runtime):
    from types import SimpleNamespace

    from app.ui.playground_run import Playground

    pg, request = Playground(tiny_runtime, CancelRegistry()), SimpleNamespace(session_hash="queued")
    pg.accept("never run", None, request)  # the submit click, before the queue
    assert pg.cancel(request) == "Stopping…"
    outputs = list(pg.generate("never run", True, "low", None, None, "Wait", 8, 0, 0.95, 1, True, None, request))
    assert [status for _, status, _, _ in outputs] == ["Cancelled before it started; nothing was run."]
    assert tiny_runtime.store.count_runs() == 0


def test_a_closed_stream_still_saves_the_run_as_cancelled(tiny_runtime):
    from app.ui.playground_run import Playground

    stream = Playground(tiny_runtime, CancelRegistry()).generate(
        "walk away", True, "custom", 4000, 4000, "Wait", 8, 0.8, 0.95, 1, True, None, None
    )
    while not any(m.content.strip("…") for m in next(stream)[0][1:]):
        pass
    stream.close()  # what Gradio does when the browser goes away mid-run
    (summary,) = tiny_runtime.store.list_runs(search="walk away")
    assert summary.stop_reasons == ("cancelled",) and summary.thinking_tokens > 0


def test_the_queue_policy_one_model_event_at_a_time_in_process_and_a_slow_idle_poll(tiny_runtime):
    """``prepare`` gives every model event the engine's limit (1 in process) and slows Gradio's idle poll,
    which otherwise wakes every 1 ms and takes the GIL from the model thread (app.ui.server)."""
    from app.ui.app import build_demo
    from app.ui.running import MODEL_QUEUE
    from app.ui.server import QUEUE_POLL_SECONDS, prepare

    demo = prepare(build_demo(tiny_runtime), 1)
    model_fns = [fn for fn in demo.fns.values() if fn.concurrency_id == MODEL_QUEUE["concurrency_id"]]
    assert len(model_fns) >= 5 and all(fn.concurrency_limit == 1 for fn in model_fns)
    assert demo._queue.sleep_when_free == QUEUE_POLL_SECONDS  # fails if Gradio renames its idle poll


def test_a_refusal_is_one_line_and_a_bug_says_so_with_its_traceback_in_the_log(caplog):
    from app.errors import InvalidInput
    from app.ui.running import BUG_MESSAGE, user_error

    assert user_error(InvalidInput("k=0 must be at least 1")).message == "k=0 must be at least 1"
    shown = gr.Error("already a message")
    assert user_error(shown) is shown
    with caplog.at_level("ERROR", logger="app.ui.running"):
        try:
            {}["missing"]
        except KeyError as exc:
            bug = user_error(exc)
    assert bug.message == f"{BUG_MESSAGE}: KeyError: 'missing'"
    assert "Traceback" in caplog.text and "KeyError" in caplog.text
