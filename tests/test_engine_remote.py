"""The remote engine's failure modes: each ends the run with one message naming the server URL and the fix.

Unreachable, wrong model name and a missing ``/v1/completions`` use nothing fake: a port nothing listens
on, and the session's real ``transformers serve``. transformers serve has no API keys and can't be made
to crash or stall on cue, so 401, a timeout and a stream cut mid-way come from a few lines of socket
server below that answers exactly that over real HTTP (the one stand-in here, and it says so).
"""

from __future__ import annotations

import html
import threading

import pytest
from server_support import http_reply as _http
from server_support import scripted_server

from app.domain import GenerationSettings
from app.engine.events import CancelToken
from app.engine.remote import RemoteEngine
from app.engine.remote_client import CompletionClient, RemoteError
from app.services.runs import run_prompt
from app.ui.server import free_port

SETTINGS = GenerationSettings(max_thinking_tokens=24, max_answer_tokens=8)
KEY = "sk-secret-never-shown-4711"


def _engine(remote_engine, url: str, **client_kwargs) -> RemoteEngine:
    return RemoteEngine(remote_engine.loaded, CompletionClient(url, **client_kwargs))


def test_unreachable_server_names_the_url_and_the_fix(remote_engine):
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = _engine(remote_engine, url, model="m").generate("hi", SETTINGS)
    sample = result.samples[0]
    assert sample.stop_reason == "error"
    assert result.error.startswith(f"Could not reach the inference server at {url}")
    assert "--server" in result.error and "Error" not in result.error.split(" (")[0]


def test_wrong_model_name_lists_the_fix(remote_engine, inference_server):
    result = _engine(remote_engine, inference_server[0], model="no-such-model").generate("hi", SETTINGS)
    assert result.samples[0].stop_reason == "error"
    assert "does not serve model 'no-such-model'" in result.error and "--server-model" in result.error
    assert inference_server[0] in result.error


def test_a_server_without_v1_completions(remote_engine, inference_server):
    base = inference_server[0].removesuffix("/v1")  # a real server, but the path lacks /v1
    result = _engine(remote_engine, base, model="m").generate("hi", SETTINGS)
    assert "has no /v1/completions endpoint" in result.error and "ends in /v1" in result.error


def test_401_names_the_key_setting_and_never_shows_the_key(remote_engine):
    with scripted_server(_http("401 Unauthorized", b'{"error": {"message": "Invalid API key"}}')) as url:
        engine = _engine(remote_engine, url, model="m", api_key=KEY)
        result = engine.generate("hi", SETTINGS)
    assert "HTTP 401" in result.error and "TRACELAB_API_KEY" in result.error and url in result.error
    assert KEY not in result.error and KEY not in repr(engine.client)


def test_a_silent_server_times_out_with_a_message(remote_engine):
    with scripted_server(b"", hold=5.0) as url:
        result = _engine(remote_engine, url, model="m", read_timeout=1.0).generate("hi", SETTINGS)
    assert result.samples[0].stop_reason == "error"
    assert f"The inference server at {url} sent nothing for 1 s" in result.error


def test_a_stream_cut_mid_way_keeps_and_saves_the_partial_trace(remote_engine, tiny_runtime):
    chunks = b"".join(
        b'data: {"choices": [{"index": 0, "text": "%s"}]}\n\n' % word for word in (b"First,", b" two", b" steps")
    )
    # A chunked SSE response that stops without its final chunk: the server died mid-stream.
    body = b"%x\r\n%s\r\n" % (len(chunks), chunks)
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    with scripted_server(reply) as url:
        tiny_runtime.engine = _engine(remote_engine, url, model="m")
        saved = run_prompt(tiny_runtime, "What is 2+2?", SETTINGS)
    sample = saved.result.samples[0]
    assert sample.stop_reason == "error" and sample.thinking == "First, two steps"
    assert f"The connection to {url} broke mid-stream" in saved.result.error and "partial trace" in saved.result.error
    stored = tiny_runtime.store.get_run(saved.run_id)
    assert stored.samples[0].thinking == "First, two steps" and stored.samples[0].stop_reason == "error"
    assert stored.error == saved.result.error


def test_the_app_starts_with_the_server_down_and_the_header_says_so(tmp_path, cache_dir):
    from app.services.runtime import Runtime
    from app.settings import AppSettings
    from app.ui.render import header_markdown

    url = f"http://127.0.0.1:{free_port()}/v1"
    settings = AppSettings.from_env(
        {}, server=url, api_key=KEY, db=f"sqlite:///{tmp_path / 't.db'}", cache_dir=str(cache_dir)
    )
    rt = Runtime.start(settings)
    assert rt.loaded.model is None  # the tokenizer only: no weights were loaded
    header = html.unescape(header_markdown(rt.header()))  # as shown: safe_text writes punctuation as entities
    assert "Inference server unavailable" in header and url in header
    assert KEY not in header and KEY not in repr(settings)


def test_the_client_rejects_a_non_http_url():
    with pytest.raises(RemoteError, match="is not an http"):
        CompletionClient("gpu-box:8000")


def test_cancel_closes_the_stream_promptly(remote_engine):
    cancel = CancelToken()
    threading.Timer(1.5, cancel.cancel).start()
    settings = GenerationSettings(max_thinking_tokens=3000, min_thinking_tokens=3000, max_answer_tokens=4)
    result = remote_engine.generate("Count to a thousand.", settings, cancel)
    sample = result.samples[0]
    assert sample.stop_reason == "cancelled" and sample.thinking_tokens < 3000
    assert sample.seconds < 30


def test_stop_thinking_now_cuts_with_user_cut_on_the_server(remote_engine):
    from app.engine.events import SteerToken, ThinkingDelta

    steer, seen, result = SteerToken(), 0, None
    settings = GenerationSettings(max_thinking_tokens=3000, min_thinking_tokens=3000, max_answer_tokens=8)
    for event in remote_engine.stream("Count to a thousand.", settings, steer=steer):
        if isinstance(event, ThinkingDelta):
            seen += 1
            if seen == 3:
                steer.stop_thinking()
        result = getattr(event, "result", result)
    sample = result.samples[0]
    assert sample.stop_reason == "user_cut" and sample.thinking_tokens < 3000
    assert sample.raw_text.count("</think>") == 1 and sample.answer.startswith("Final Answer:")


def test_cancel_makes_the_server_stop_generating(remote_engine, inference_server):
    """Liveness, not speed: after a cancel the server's CPU goes quiet while the request had far to go.

    The control holds a stream open without reading: the same window then shows the server busy, so the
    measure detects a generation that goes on. Closing the stream (what the engine does on cancel) makes
    transformers serve cancel its streamer (cli/serving/completion.py), like vLLM and llama.cpp do.
    """
    import time

    import httpx
    from server_support import SERVER_PIDS, cpu_seconds

    url = inference_server[0]
    pid = SERVER_PIDS[url]
    body = {"prompt": "Count to a thousand: 1, 2, 3,", "max_tokens": 3000, "temperature": 0, "stream": True}
    body["model"] = remote_engine.client.resolve_model()

    def busy(window: float = 2.0) -> float:
        time.sleep(0.5)  # the request in flight finishes its step
        before = cpu_seconds(pid)
        time.sleep(window)
        return (cpu_seconds(pid) - before) / window

    with httpx.stream("POST", f"{url}/completions", json=body, timeout=60) as response:  # the control
        lines = response.iter_lines()
        started = time.perf_counter()
        chunks = sum(1 for _, line in zip(range(40), lines, strict=False) if line.startswith("data:"))
        rate = chunks / (time.perf_counter() - started)
        held_open = busy()
    assert rate > 0 and (3000 - chunks) / rate > 10, "the request would have ended within the window anyway"
    assert held_open > 0.2, f"the measure can't see a running generation ({held_open:.2f} CPU s/s)"

    cancel, seen = CancelToken(), []
    settings = GenerationSettings(max_thinking_tokens=3000, min_thinking_tokens=3000, max_answer_tokens=4)
    for event in remote_engine.stream("Count to a thousand.", settings, cancel):
        seen.append(event)
        if len(seen) == 20:
            cancel.cancel()
    sample = seen[-1].result.samples[0]
    assert sample.stop_reason == "cancelled" and sample.thinking_tokens < 3000
    after_cancel = busy()
    assert after_cancel < held_open / 4, f"server still busy after cancel: {after_cancel:.2f} vs {held_open:.2f}"
    started = time.perf_counter()
    follow_up = remote_engine.generate("Hi", GenerationSettings(thinking=False, max_answer_tokens=4))
    assert follow_up.error is None and time.perf_counter() - started < 30
