"""``POST /gradio_api/cancel`` over raw HTTP (issue 23, item 1), against the real app with logins for alice and bob.

A cancel stops its run once: the run is saved ``cancelled``, nothing starts it again, the model is free for the
next caller. A cancel reaches only the caller's own waiting or running event (its session, and with logins its
user); an unknown or foreign event id is answered 404 in one sentence, never ``{"success": true}``. Each runs
on a quiet machine and under ``cpu_hog``, where the races that matter show.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import httpx
import pytest
from ui_support import make_runtime, wait_until

from app.ui.cancelling import NOT_YOURS
from app.ui.security import LoginGuard

USERS = [("alice", "a-pass"), ("bob", "b-pass")]
#: The issue's call, with the tiny model sampling (it writes visible words only when it samples).
LONG = [True, "custom", 300, 300, "Wait", 4, 0.8, 0.95, 1, True]


@pytest.fixture(scope="module")
def guarded(tiny_loaded, tiny_engine, tmp_path_factory):
    """(runtime, url) of the real app with --auth alice/bob."""
    from app.ui.server import launch_for_tests

    rt = make_runtime(tiny_loaded, tiny_engine, tmp_path_factory.mktemp("cancel") / "tracelab.db")
    rt = replace(rt, settings=replace(rt.settings, auth="alice:a-pass"))
    demo, url = launch_for_tests(rt, auth=LoginGuard(USERS))
    try:
        yield rt, url
    finally:
        demo.close()


def _login(url: str, user: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=60)
    assert client.post("login", data={"username": user, "password": dict(USERS)[user]}).status_code == 200
    return client


class Streamed:
    """One ``/call/generate`` of ``client``, its stream read on a thread: ``event_id``, ``events``, ``last``."""

    def __init__(self, client: httpx.Client, prompt: str, settings: list | None = None) -> None:
        body = {"data": [prompt, *(settings or LONG)]}
        self.event_id = client.post("gradio_api/call/generate", json=body).json()["event_id"]
        self.events: list[str] = []
        self.last = None
        self._thread = threading.Thread(target=self._read, args=(client,), daemon=True)
        self._thread.start()

    def _read(self, client: httpx.Client) -> None:
        with client.stream("GET", f"gradio_api/call/generate/{self.event_id}", timeout=600) as stream:
            kind = None
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                    self.events.append(kind)
                elif line.startswith("data:") and kind in ("complete", "error"):
                    self.last = json.loads(line.split(":", 1)[1])
                    return

    def finished(self, timeout: float = 300) -> list[str]:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the stream never ended"
        return self.events


def _fn_index(client: httpx.Client) -> int:
    deps = client.get("config").json()["dependencies"]
    return next(d["id"] for d in deps if d.get("api_name") == "generate")


def _runs(rt, prompt: str) -> list:
    return rt.store.list_runs(search=prompt)


def _running(rt, prompt: str) -> bool:
    return any(r.status == "running" for r in _runs(rt, prompt))


def _cancel(client: httpx.Client, event_id: str, fn: int, session: str | None = None) -> httpx.Response:
    return client.post(
        "gradio_api/cancel", json={"session_hash": session or event_id, "fn_index": fn, "event_id": event_id}
    )


def test_a_cancel_stops_the_run_once_and_frees_the_model(guarded, load):
    rt, url = guarded
    alice, bob = _login(url, "alice"), _login(url, "bob")
    prompt = f"cancel once {load}"
    run = Streamed(alice, prompt)
    wait_until(lambda: _running(rt, prompt), timeout=120, what="alice's run to start")
    answer = _cancel(alice, run.event_id, _fn_index(alice))
    assert answer.status_code == 200 and answer.json() == {"success": True}
    run.finished()
    wait_until(lambda: not _running(rt, prompt), timeout=60, what="the cancelled run to be saved")
    # the model is free: bob's short run goes through next; then nothing restarted alice's (was: a duplicate)
    after = Streamed(bob, f"after the cancel {load}", [False, "low", 0, 0, "Wait", 2, 0.0, 0.95, 1, True])
    assert after.finished()[-1] == "complete" and after.last[2]["run_id"]
    runs = _runs(rt, prompt)
    assert [r.status for r in runs] == ["cancelled"]
    assert _cancel(alice, run.event_id, _fn_index(alice)).status_code == 404  # finished: nothing left to cancel


def test_a_cancel_reaches_only_the_callers_own_run_and_a_made_up_id_says_so(guarded, load):
    rt, url = guarded
    alice, bob = _login(url, "alice"), _login(url, "bob")
    fn = _fn_index(alice)
    prompt = f"alice keeps hers {load}"
    run = Streamed(alice, prompt, [True, "custom", 120, 120, "Wait", 4, 0.8, 0.95, 1, True])
    wait_until(lambda: _running(rt, prompt), timeout=120, what="alice's run to start")
    for session in (run.event_id, "bobs-own-session"):  # bob with her event id (was: hers cancelled, then rerun)
        refused = _cancel(bob, run.event_id, fn, session)
        assert refused.status_code == 404 and refused.json()["detail"] == NOT_YOURS
    mismatched = _cancel(alice, run.event_id, fn, "another-session")  # was: her run closed and started over
    assert mismatched.status_code == 404
    made_up = _cancel(alice, "0" * 32, fn)
    assert made_up.status_code == 404 and made_up.json() == {"success": False, "detail": NOT_YOURS}  # was: success
    assert _cancel(alice, run.event_id, fn + 1).status_code == 404  # another event's fn_index
    assert run.finished()[-1] == "complete"
    sample = run.last[2]["samples"][0]
    assert sample["stop_reason"] != "cancelled" and sample["thinking_tokens"] == 120
    assert [r.status for r in _runs(rt, prompt)] == ["done"]  # exactly one run, never restarted


@pytest.mark.parametrize("body", ["not json", "[]", '{"session_hash": 1, "fn_index": "x", "event_id": null}', "{}"])
def test_a_body_that_is_not_a_cancel_is_refused_in_one_sentence(guarded, body):
    _, url = guarded
    answer = _login(url, "alice").post("gradio_api/cancel", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422 and "A cancel takes a JSON object" in answer.json()["detail"]
