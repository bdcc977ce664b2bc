"""Token data from servers: ``logprobs`` -> the sample's TokenTrace, and the "this server has none" path.

The parsing runs against the scripted socket server (server_support.scripted_server) answering over real
HTTP with vLLM-shaped streamed chunks (``choices[0].logprobs`` = tokens, token_logprobs, top_logprobs): no
server we can run here sends logprobs. The no-data path runs end to end on the session's real
``transformers serve``, which accepts the field and sends none.
"""

from __future__ import annotations

import json
import math

import pytest
from server_support import http_reply, scripted_server

from app.domain import SERVER_NO_TOKEN_DATA, GenerationSettings
from app.engine.prompt_side import load_prompt_side
from app.engine.remote import RemoteEngine
from app.engine.remote_client import CompletionClient
from app.engine.remote_tokens import SOURCE_SERVER, TokenLog, parse_logprobs, top_k_entropy
from app.services.runs import run_json, run_prompt
from app.ui.lens import NO_SERVER_DATA, NO_TOKEN_DATA, lens_html

THINK = [("Let", -0.1), (" me", -0.5), (" add", -1.2), (".", -0.05)]
ANSWER = [(" 7", -0.3), (".", -0.01)]


def _top(token: str, lp: float) -> dict[str, float]:
    """Five alternatives, the chosen token first (as vLLM sends them: a dict text -> logprob)."""
    others = {f"alt{i}": lp - 1.0 - i for i in range(4)}
    return {token: lp, **others}


def _sse(tokens: list[tuple[str, float]], finish: str, stop_reason: str | None = None, logprobs: bool = True) -> bytes:
    events = []
    for i in range(0, len(tokens), 2):  # two tokens per chunk, as a server batching its stream would
        part = tokens[i : i + 2]
        data = {
            "tokens": [t for t, _ in part],
            "token_logprobs": [lp for _, lp in part],
            "top_logprobs": [_top(t, lp) for t, lp in part],
            "text_offset": [0] * len(part),
        }
        choice = {"index": 0, "text": "".join(t for t, _ in part), "finish_reason": None}
        if logprobs:
            choice["logprobs"] = data
        events.append({"choices": [choice]})
    last = {"index": 0, "text": "", "finish_reason": finish, "stop_reason": stop_reason}
    events.append({"choices": [last], "usage": {"completion_tokens": len(tokens)}})
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    return http_reply("200 OK", body, content_type="text/event-stream")


def _body(request: bytes) -> dict:
    return json.loads(request.partition(b"\r\n\r\n")[2] or b"{}")


def vllm_like(request: bytes) -> bytes:
    """Thinking requests (they carry ``stop``) write THINK, closing the tag unless ``max_tokens`` cuts them."""
    body = _body(request)
    if "stop" in body:
        if body["max_tokens"] <= len(THINK):
            return _sse(THINK[: body["max_tokens"]], "length")
        return _sse(THINK, "stop", body["stop"][0])
    return _sse(ANSWER, "stop")


@pytest.fixture(scope="module")
def prompt_side(cache_dir):
    return load_prompt_side("bundled", cache_dir=cache_dir)


def _pieces(tok, text: str) -> list[str]:
    log = TokenLog(tok)
    log.forced(text, "c")
    return [t.text for t in log.tokens]


def test_parse_logprobs_reads_the_vllm_shape_and_ignores_what_is_missing():
    choice = {
        "text": "Hi",
        "logprobs": {"tokens": ["Hi"], "token_logprobs": [-0.5], "top_logprobs": [_top("Hi", -0.5)]},
    }
    (token,) = parse_logprobs(choice)
    assert token.text == "Hi" and token.logprob == -0.5 and token.top[0] == ("Hi", -0.5) and len(token.top) == 5
    assert parse_logprobs({"text": "Hi"}) is None and parse_logprobs({"text": "Hi", "logprobs": None}) is None
    assert parse_logprobs({"logprobs": {"tokens": ["a", "b"], "token_logprobs": [-1.0]}}) is None  # inconsistent
    # entropy of the top-k renormalised: uniform over 4 is log 4
    assert top_k_entropy(tuple((str(i), math.log(0.1)) for i in range(4))) == pytest.approx(math.log(4))


@pytest.mark.parametrize("cut", [False, True], ids=["closed", "budget_cut"])
def test_logprob_chunks_fill_the_token_trace(prompt_side, cut):
    tok = prompt_side.tokenizer
    budget = len(THINK) if cut else 50
    settings = GenerationSettings(max_thinking_tokens=budget, max_answer_tokens=10)
    with scripted_server(vllm_like) as url:
        result = RemoteEngine(prompt_side, CompletionClient(url, model="m")).generate("What is 3 + 4?", settings)
    sample = result.samples[0]
    assert result.error is None and sample.stop_reason == ("budget_cut" if cut else "end")
    trace = sample.tokens
    assert trace is not None and trace.source == SOURCE_SERVER
    end = _pieces(tok, "\n</think>\n\n")
    cue = _pieces(tok, "Final Answer:") if cut else []
    assert trace.pieces == [t for t, _ in THINK] + end + cue + [t for t, _ in ANSWER]
    assert "".join(trace.pieces) == sample.raw_text
    assert trace.labels == "tttt" + "C" * len(end) + "A" * len(cue) + "aa"
    assert trace.prob[0] == pytest.approx(math.exp(-0.1), abs=1e-4) and trace.prob[-1] == pytest.approx(0.99, abs=1e-2)
    expected = top_k_entropy(tuple(_top("Let", -0.1).items()))
    assert trace.entropy[0] == pytest.approx(expected, abs=1e-4) and 0 < expected < math.log(5)
    forced = [j for j, c in enumerate(trace.labels) if c.isupper()]
    assert forced and all(trace.prob[j] is None and trace.entropy[j] is None and not trace.top_ids[j] for j in forced)
    assert [trace.vocab[i] for i in trace.top_ids[0]] == ["Let", "alt0", "alt1", "alt2", "alt3"]
    data = sample.to_dict()  # what generate --json prints per sample
    assert data["token_source"] == SOURCE_SERVER and data["token_prob"][0] == pytest.approx(0.90484, abs=1e-4)
    assert data["token_top"][0][0] == ["Let", pytest.approx(0.90484, abs=1e-4)]
    assert data["token_forced"].count(True) == len(forced)


def test_a_server_that_refuses_logprobs_is_asked_once_then_never_again(prompt_side):
    seen: list[dict] = []

    def refuses(request: bytes) -> bytes:
        body = _body(request)
        seen.append(body)
        if "logprobs" in body:
            return http_reply("422 Unprocessable Entity", b'{"detail": "Unexpected fields: {\'logprobs\'}"}')
        if "stop" in body:
            return _sse(THINK, "stop", body["stop"][0], logprobs=False)
        return _sse(ANSWER, "stop", logprobs=False)

    settings = GenerationSettings(max_thinking_tokens=50, max_answer_tokens=10)
    with scripted_server(refuses) as url:
        client = CompletionClient(url, model="m")
        engine = RemoteEngine(prompt_side, client)
        first = engine.generate("What is 3 + 4?", settings)
        second = engine.generate("What is 3 + 4?", settings)
    assert first.error is None and second.error is None and not client.send_logprobs
    assert ["logprobs" in b for b in seen] == [True, False, False, False, False]  # one refusal, then never sent
    # without logprobs in the reply chunks there is no token data, and the run says the server has none
    assert first.samples[0].answer == "7." and first.samples[0].to_dict()["token_source"] == SERVER_NO_TOKEN_DATA


def test_transformers_serve_sends_no_logprobs_and_the_lens_says_so(remote_engine, tiny_runtime):
    tiny_runtime.engine = remote_engine
    settings = GenerationSettings(min_thinking_tokens=16, max_thinking_tokens=16, max_answer_tokens=6)
    saved = run_prompt(tiny_runtime, "What is 2+2?", settings)
    assert saved.result.error is None  # sending the field did not break the request
    for run in (run_json(saved), run_json(tiny_runtime.store.get_run(saved.run_id))):  # as generated, and reopened
        sample = run["samples"][0]
        assert sample["thinking_tokens"] == 16 and sample["answer"]
        assert sample["token_source"] == SERVER_NO_TOKEN_DATA
        assert all(sample[k] is None for k in ("token_text", "token_prob", "token_entropy", "token_top"))
        view = lens_html(run)
        assert NO_SERVER_DATA in view and NO_TOKEN_DATA not in view
    assert NO_TOKEN_DATA in lens_html({"samples": [{"token_text": None}]})  # a run saved before capture still says so
