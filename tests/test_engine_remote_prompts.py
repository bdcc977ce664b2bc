"""``--server-prompt tokens``: the remote engine sends token-id prompts built as the local engine builds its input.

transformers serve (the session's real server) takes text prompts only, so it checks the refusal message; the
ids themselves are checked on the request bodies a few lines of socket server record (the stand-in of
tests/test_engine_remote.py), against the ids the local engine's ``BudgetPlan`` forces.
"""

from __future__ import annotations

import json

from server_support import http_reply, scripted_server

from app.domain import GenerationSettings
from app.engine.budget import BudgetPlan
from app.engine.reasoning_formats import build_prompt
from app.engine.remote import RemoteEngine
from app.engine.remote_client import CompletionClient
from app.engine.special_tokens import stop_token_ids

PROMPT = "What is 17*23?"
CUT = GenerationSettings(min_thinking_tokens=6, max_thinking_tokens=6, max_answer_tokens=8)
THOUGHT = " 17 times 23 is"


def _sse(*events: dict) -> bytes:
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    return http_reply("200 OK", body, content_type="text/event-stream")


def _recording_server(bodies: list[dict]):
    def reply(request: bytes) -> bytes:
        body = json.loads(request.partition(b"\r\n\r\n")[2])
        bodies.append(body)
        if body.get("stop"):  # the thinking phase: it runs out of budget
            text, finish, used = THOUGHT, "length", body["max_tokens"]
        else:  # the answer phase
            text, finish, used = " 391", "stop", 2
        return _sse(
            {"choices": [{"index": 0, "text": text}]},
            {"choices": [{"index": 0, "text": "", "finish_reason": finish}], "usage": {"completion_tokens": used}},
        )

    return scripted_server(reply)


def _ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False))


def test_token_prompts_force_the_same_ids_as_the_local_engine(remote_engine):
    loaded, tok = remote_engine.loaded, remote_engine.tokenizer
    bodies: list[dict] = []
    with _recording_server(bodies) as url:
        engine = RemoteEngine(loaded, CompletionClient(url, model="m"), capture_tokens=False, token_prompts=True)
        sample = engine.generate(PROMPT, CUT).samples[0]
    assert sample.stop_reason == "budget_cut" and sample.thinking_tokens == 6 and sample.answer.endswith(" 391")

    prompt = build_prompt(loaded.format, tok, [{"role": "user", "content": PROMPT}], True)
    plan = BudgetPlan.build(
        tok, thinking=True, max_thinking=6, min_thinking=6, max_continuations=CUT.max_continuations, max_answer=8,
        close_tag=loaded.format.close_tag, continuation=CUT.continuation, answer_cue=CUT.answer_cue,
        stop_ids=stop_token_ids(tok),
    )  # fmt: skip
    thinking_request, answer_request = bodies
    assert thinking_request["prompt"] == _ids(tok, prompt)
    forced = list(plan.end_ids) + list(plan.cue_ids)  # what the local engine writes after a budget cut
    assert answer_request["prompt"] == _ids(tok, prompt) + _ids(tok, THOUGHT) + forced

    # Text prompts can't say this: the server re-tokenises the join, and SmolLM2's pre-tokenizer splits it
    # differently (README, "Scale out"), which is why the setting exists.
    bodies.clear()
    with _recording_server(bodies) as url:
        RemoteEngine(loaded, CompletionClient(url, model="m"), capture_tokens=False).generate(PROMPT, CUT)
    text_prompt = bodies[1]["prompt"]
    joined = f"\n{loaded.format.close_tag}\n\n{CUT.answer_cue}"
    assert isinstance(text_prompt, str) and text_prompt == prompt + THOUGHT + joined
    assert _ids(tok, text_prompt) != answer_request["prompt"]


def test_a_wait_below_the_minimum_is_the_local_continuation_ids(remote_engine):
    loaded, tok = remote_engine.loaded, remote_engine.tokenizer
    bodies: list[dict] = []

    def reply(request: bytes) -> bytes:
        body = json.loads(request.partition(b"\r\n\r\n")[2])
        bodies.append(body)
        if len(bodies) == 1:  # the model closes its thinking early: below the minimum, the loop adds "Wait"
            return _sse(
                {"choices": [{"index": 0, "text": " done", "finish_reason": "stop", "stop_reason": "</think>"}]}
            )
        return _sse({"choices": [{"index": 0, "text": " x", "finish_reason": "length"}]})

    settings = GenerationSettings(min_thinking_tokens=12, max_thinking_tokens=12, max_answer_tokens=2)
    with scripted_server(reply) as url:
        engine = RemoteEngine(loaded, CompletionClient(url, model="m"), capture_tokens=False, token_prompts=True)
        sample = engine.generate(PROMPT, settings).samples[0]
    assert sample.continuations >= 1 and sample.thinking_tokens <= 12
    wait_ids = _ids(tok, "\n" + settings.continuation)  # BudgetPlan's continuation_ids
    first, second = bodies[0]["prompt"], bodies[1]["prompt"]
    assert second == first + _ids(tok, " done") + wait_ids


def test_transformers_serve_refuses_token_prompts_with_the_fix(remote_engine, inference_server):
    url = inference_server[0]
    engine = RemoteEngine(remote_engine.loaded, CompletionClient(url), capture_tokens=False, token_prompts=True)
    result = engine.generate(PROMPT, GenerationSettings(max_thinking_tokens=4, max_answer_tokens=2))
    assert result.samples[0].stop_reason == "error"
    assert f"The server at {url} does not take token-id prompts" in result.error
    assert "--server-prompt text" in result.error and "Traceback" not in result.error


def test_a_500_about_the_prompt_also_names_the_fix(remote_engine):
    """llama-cpp-python's server answers a token-id prompt with HTTP 500 and pydantic's validation errors."""
    detail = {
        "error": {
            "message": "1 validation error: {'loc': ('body', 'prompt', 'str'), 'msg': 'Input should be a valid string'}"
        }
    }
    with scripted_server(http_reply("500 Internal Server Error", json.dumps(detail).encode())) as url:
        engine = RemoteEngine(remote_engine.loaded, CompletionClient(url, model="m"), token_prompts=True)
        result = engine.generate(PROMPT, GenerationSettings(max_thinking_tokens=4, max_answer_tokens=2))
    assert f"The server at {url} does not take token-id prompts (HTTP 500" in result.error
    assert "--server-prompt text" in result.error


def test_the_setting_reaches_the_remote_engine(tmp_path, cache_dir):
    from app.services.runtime import Runtime
    from app.settings import AppSettings

    env = {"TRACELAB_SERVER": "http://127.0.0.1:9/v1", "TRACELAB_SERVER_PROMPT": "tokens"}
    settings = AppSettings.from_env(env, model="bundled", cache_dir=str(cache_dir))
    rt = Runtime.start(settings, with_store=False)
    assert rt.engine.token_prompts is True
