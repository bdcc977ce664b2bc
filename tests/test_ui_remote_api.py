"""The Playground and Self-consistency through gradio_client on the remote engine (a real transformers serve).

With a server, generations don't queue on the in-process model thread: two sessions stream at once.
"""

from __future__ import annotations

import pytest
from gradio_client import Client
from ui_support import make_runtime, running_app, wait_until

pytestmark = pytest.mark.bundled

LONG = {"effort": "custom", "max_thinking_tokens": 4000, "min_thinking_tokens": 4000, "temperature": 0.8, "seed": 3}


@pytest.fixture(scope="module")
def remote_app(remote_engine, tmp_path_factory):
    rt = make_runtime(remote_engine.loaded, remote_engine, tmp_path_factory.mktemp("ui-remote") / "tracelab.db")
    rt.settings.server = remote_engine.url
    with running_app(rt) as url:
        yield rt, url


def _thinking_text(outputs: list) -> str:
    for out in reversed(outputs):
        for message in out[0]:
            if (message.get("metadata") or {}).get("title"):
                return "".join(part.get("text", "") for part in message["content"]).strip("… ")
    return ""


def test_header_names_the_server(remote_app):
    rt, url = remote_app
    info = rt.header()
    assert info["server"] == rt.engine.url and info["server_error"] is None


def test_two_sessions_generate_at_the_same_time(remote_app):
    rt, url = remote_app
    alice, bob = Client(url, verbose=False), Client(url, verbose=False)
    jobs = [
        c.submit(prompt=f"Count slowly, {who}.", **LONG, api_name="/generate") for c, who in ((alice, "A"), (bob, "B"))
    ]
    try:
        # Each needs minutes for 4000 tokens: if they queued, the second could not stream before the first ends.
        wait_until(
            lambda: all(_thinking_text(job.outputs()) for job in jobs), timeout=120, what="both sessions to stream"
        )
        assert not any(job.done() for job in jobs)
    finally:
        for c in (alice, bob):
            c.predict(api_name="/cancel")
    runs = [job.result(timeout=60)[2] for job in jobs]
    for run in runs:
        sample = run["samples"][0]
        assert sample["stop_reason"] == "cancelled" and sample["thinking"]
        assert rt.store.get_run(run["run_id"]).samples[0].thinking == sample["thinking"]


def test_playground_runs_to_a_budget_cut_on_the_server(remote_app):
    rt, url = remote_app
    client = Client(url, verbose=False)
    settings = {"effort": "custom", "max_thinking_tokens": 24, "min_thinking_tokens": 24, "max_answer_tokens": 12}
    _chat, status, run = client.predict(prompt="What is 17*23?", **settings, api_name="/generate")
    sample = run["samples"][0]
    assert sample["thinking_tokens"] == 24 and sample["stop_reason"] == "budget_cut"
    assert rt.store.get_run(run["run_id"]).model == rt.loaded.name


def test_self_consistency_samples_k_on_the_server(remote_app):
    rt, url = remote_app
    client = Client(url, verbose=False)
    k = 3
    summary, vote, scatter, cards, report, run_id = client.predict(
        "What is 2 + 2?", "4", k, 0.8, True, 16, 8, 5, api_name="/sample"
    )
    assert report["k"] == k and report["run_id"] == run_id
    stored = rt.store.get_run(run_id)
    assert len(stored.samples) == k and all(s.thinking_tokens <= 16 for s in stored.samples)
