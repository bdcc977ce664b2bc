"""The engine contract on the real bundled SmolLM2-135M (prompted reasoning format), on both engines.

``engine`` (conftest.py) is the local engine and the remote engine on a real ``transformers serve``:
one suite, the same guarantees. Streaming order and cancelling are in tests/test_engine_stream.py.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys

import pytest
from server_support import served_requests

from app.domain import SERVER_NO_TOKEN_DATA, GenerationSettings
from app.engine.events import EngineStatus, Finished, Snapshot
from app.engine.interface import GenerationEngine, engine_concurrency

pytestmark = pytest.mark.bundled
PROMPT = "What is 17*23?"


def test_bundled_model_loads_with_the_prompted_format(bundled_loaded):
    assert bundled_loaded.format.name == "prompted"
    assert bundled_loaded.source == "bundled" and bundled_loaded.quantization == "none"
    assert bundled_loaded.is_small_demo


@pytest.mark.parametrize("where", ["local", "remote"])
def test_cli_exact_budget_json(where, bundled_dir, tmp_path, request):
    env = dict(os.environ, TRACELAB_CACHE_DIR=str(bundled_dir.parent.parent), TRACELAB_DATA_DIR=str(tmp_path))
    server = []
    if where == "remote":
        url, log_path = request.getfixturevalue("inference_server")
        server = ["--server", url]
        before = served_requests(log_path)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "generate",
            PROMPT,
            *server,
            "--min-thinking-tokens",
            "60",
            "--max-thinking-tokens",
            "60",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,  # a loaded shared CI box can take minutes to load and run the model
        check=True,
    )
    payload = json.loads(out.stdout)
    assert set(payload) >= {"model", "format", "settings", "samples"}
    sample = payload["samples"][0]
    assert sample["thinking_tokens"] == 60
    assert sample["stop_reason"] == "budget_cut"
    assert sample["answer"].strip()
    assert set(sample) >= {"thinking", "answer", "thinking_tokens", "answer_tokens", "stop_reason", "seconds"}
    assert "loading model" in out.stderr  # progress goes to stderr, stdout is pure JSON
    if where == "remote":  # the tokens really came from the server: its log shows the phase requests
        assert served_requests(log_path) >= before + 2
        # transformers serve sends no logprobs: null token data, and the run says why
        assert sample["token_prob"] is None and sample["token_source"] == SERVER_NO_TOKEN_DATA
    else:
        assert sample["token_prob"] and sample["token_source"] != SERVER_NO_TOKEN_DATA


def test_max_budget_is_never_exceeded(engine):
    result = engine.generate(
        PROMPT, GenerationSettings(max_thinking_tokens=40, max_answer_tokens=30, samples=4, temperature=0.8, seed=5)
    )
    assert len(result.samples) == 4
    assert all(s.thinking_tokens <= 40 and s.answer for s in result.samples)


def test_min_budget_keeps_it_thinking_with_wait(engine):
    s = engine.generate(
        PROMPT, GenerationSettings(min_thinking_tokens=48, max_thinking_tokens=64, max_answer_tokens=8)
    ).samples[0]
    assert s.thinking_tokens >= 48  # it ends on its own after ~20 thinking tokens, so "Wait" is what kept it going
    assert "Wait" in s.thinking and s.continuations >= 1


def test_no_think_returns_empty_thinking(engine):
    s = engine.generate(PROMPT, GenerationSettings(thinking=False, max_answer_tokens=40)).samples[0]
    assert s.thinking == "" and s.thinking_tokens == 0 and s.answer


def test_seeded_samples_are_reproducible(engine):
    # transformers serve seeds one global RNG when a request arrives, so concurrent requests share it; a
    # server that seeds per request (vLLM, SGLang) reproduces k > 1 too. Locally k rows are one batch.
    k = 2 if engine.concurrency == 1 else 1
    settings = GenerationSettings(max_thinking_tokens=32, max_answer_tokens=8, samples=k, temperature=1.2, seed=1)
    timing = {"seconds", "time_to_first_token", "thinking_seconds", "tokens_per_second"}
    first = [s.to_dict() for s in engine.generate(PROMPT, settings).samples]
    second = [s.to_dict() for s in engine.generate(PROMPT, settings).samples]
    other = [s.to_dict() for s in engine.generate(PROMPT, settings.with_(seed=2)).samples]
    strip = [{k: v for k, v in s.items() if k not in timing} for s in first]
    assert strip == [{k: v for k, v in s.items() if k not in timing} for s in second]
    assert [(s["thinking"], s["answer"]) for s in first] != [(s["thinking"], s["answer"]) for s in other]


def test_both_engines_state_the_whole_contract(engine):
    """Every method and argument of app.engine.interface is there, with the same names: callers never probe."""
    assert isinstance(engine, GenerationEngine)
    for name in ("stream", "generate", "stream_rollouts", "prompt_tokens", "forced_tokens", "prefix_start"):
        stated = inspect.signature(getattr(GenerationEngine, name)).parameters
        offered = inspect.signature(getattr(engine, name)).parameters
        assert list(offered) == [p for p in stated if p != "self"], name
    status = engine.status()
    assert isinstance(status, EngineStatus) and status.error is None
    in_process = status.server is None
    assert in_process == (engine.concurrency == 1) and engine_concurrency(engine) == engine.concurrency
    assert (status.server_model is None) == in_process
    assert (engine.context_length is not None) == in_process  # a server doesn't say
    assert isinstance(engine.capture_tokens, bool) and engine.format.name == "prompted"
    messages = [{"role": "user", "content": PROMPT}]
    assert engine.prompt_tokens(messages, True) > 0 and engine.forced_tokens(GenerationSettings()) > 0


def test_both_engines_snapshot_the_text_so_far(engine):
    settings = GenerationSettings(max_thinking_tokens=12, max_answer_tokens=4, samples=2, temperature=0.0)
    events = list(engine.stream(PROMPT, settings, snapshot_every=0.0))
    snapshots = [e for e in events if isinstance(e, Snapshot)]
    assert snapshots and isinstance(events[-1], Finished)
    assert all(len(s.samples) == 2 and s.samples[0].stop_reason == "cancelled" for s in snapshots)
    final = events[-1].result.samples[0]
    assert snapshots[0].samples[0].thinking_tokens <= final.thinking_tokens
