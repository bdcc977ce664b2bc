"""Owned data and exposure (issue 8, items 3 and 9), against the real app with logins on.

alice, bob and an admin log in through Gradio's real login route; runs record their creator; bob can't
delete alice's run, the admin can, and deleting destroys nobody's labels. Repeated wrong passwords lock a user
name from the address they came from, and only there (issue 23 item 4: logins from two real loopback
addresses, 127.0.0.1 and 127.0.0.2; a forged ``X-Forwarded-For`` moves nothing), with a refusal that says it
is a lockout and for how long. ``/gradio_api/cancel`` needs a login and can't stop another user's run. Serving
on 0.0.0.0 without ``--auth`` logs a warning and puts a banner on the page.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from ui_support import make_runtime, wait_until

from app.domain import GenerationSettings
from app.services import ownership
from app.services.runs import run_prompt
from app.ui.security import LoginGuard, LoginLocked, client_key, exposure_warning, wait_text

USERS = [("alice", "a-pass"), ("bob", "b-pass"), ("root", "r-pass"), ("carol", "c-pass"), ("dave", "d-pass")]
#: Two real client addresses on this machine (all of 127.0.0.0/8 is loopback): bob's and an attacker's.
HOME, ELSEWHERE = "127.0.0.1", "127.0.0.2"


@pytest.fixture(scope="module")
def guarded(tiny_loaded, tiny_engine, tmp_path_factory):
    """(runtime, url, guard) of the real app with --auth alice/bob/root and --admins root."""
    from app.ui.server import launch_for_tests

    rt = make_runtime(tiny_loaded, tiny_engine, tmp_path_factory.mktemp("auth") / "tracelab.db")
    rt = replace(rt, settings=replace(rt.settings, admins="root", auth="alice:a-pass"))
    guard = LoginGuard(USERS, first_lock=2.0)
    demo, url = launch_for_tests(rt, auth=guard)
    try:
        yield rt, url, guard
    finally:
        demo.close()


def _client(url: str, user: str) -> Client:
    return Client(url, auth=(user, dict(USERS)[user]), verbose=False)


def _generate(client: Client, prompt: str) -> dict:
    return client.predict(prompt=prompt, max_answer_tokens=4, thinking=False, api_name="/generate")[2]


# --- item 3: ownership ----------------------------------------------------------------------------------------


def test_bob_cannot_delete_alices_run_and_her_labels_survive_any_delete(guarded):
    rt, url, _ = guarded
    alice, bob, root = (_client(url, u) for u in ("alice", "bob", "root"))
    run_id = _generate(alice, "alice's problem")["run_id"]
    assert rt.db.get_run(run_id).created_by == "alice"
    sample = rt.db.get_run(run_id).samples[0]
    for who in ("alice", "bob"):
        for step in sample.steps:
            rt.db.add_label(step.step_id, who, 1)
    labels_before = len(rt.db.labelled_samples())

    with pytest.raises(AppError, match="started by alice; only they or an admin"):
        bob.predict(run_id, api_name="/delete_run")  # was: deleted, and alice's labels with it (4 -> 2 rows)
    assert rt.db.get_run(run_id).run_id == run_id

    message, _ = root.predict(run_id, api_name="/delete_run")  # an admin (--admins root) may
    assert message == f"Deleted run #{run_id}."
    assert run_id not in [r.run_id for r in rt.db.list_runs()]
    assert len(rt.db.labelled_samples()) == labels_before  # soft delete: every label still exports
    assert rt.db.get_run(run_id, include_deleted=True).deleted


def test_a_creator_may_delete_their_own_run(guarded):
    rt, url, _ = guarded
    bob = _client(url, "bob")
    run_id = _generate(bob, "bob's own")["run_id"]
    assert bob.predict(run_id, api_name="/delete_run")[0] == f"Deleted run #{run_id}."


def test_branch_and_think_longer_runs_belong_to_who_made_them(guarded):
    """Branch here and Think longer save new runs: their creator is the login, so she may delete them."""
    rt, url, _ = guarded
    alice = _client(url, "alice")
    out = alice.predict(
        prompt="alice thinks",
        effort="custom",
        max_thinking_tokens=24,
        min_thinking_tokens=24,
        max_answer_tokens=4,
        temperature=0.8,  # the tiny model writes visible words only when it samples
        seed=1,
        api_name="/generate",
    )
    parent = out[2]["run_id"]
    alice.predict(out[2], 1, 1, 2, "", api_name="/pg_branch_here")
    longer = alice.predict(effort="custom", max_thinking_tokens=8, max_answer_tokens=4, api_name="/think_longer")
    branches = [r for r in rt.db.list_runs() if r.run_id > parent]
    assert len(branches) == 2 and longer[2]["run_id"] in [r.run_id for r in branches]
    assert [r.created_by for r in branches] == ["alice", "alice"]  # were None (rollouts) and "local" (Think longer)
    details = alice.predict(min(r.run_id for r in branches), api_name="/get_run")[1]  # the Branch here run
    assert f"branch of run {parent} · sample 1 · from step 1" in details  # History says where a branch came from
    details = alice.predict(longer[2]["run_id"], api_name="/get_run")[1]
    assert f"think longer from run {parent} · sample 1" in details
    for run in branches:
        assert alice.predict(run.run_id, api_name="/delete_run")[0] == f"Deleted run #{run.run_id}."


def test_without_auth_everyone_is_local_and_old_runs_belong_to_local(tiny_runtime):
    saved = run_prompt(tiny_runtime, "q", GenerationSettings(max_thinking_tokens=4, max_answer_tokens=2))
    assert tiny_runtime.db.get_run(saved.run_id).created_by == "local"
    legacy = tiny_runtime.db.save_run(saved.result, [])  # a run saved before owners were recorded
    ownership.delete_run(tiny_runtime, legacy, "local")
    other = tiny_runtime.db.save_run(saved.result, [], created_by="alice")
    with pytest.raises(ownership.NotAllowed):
        ownership.delete_run(tiny_runtime, other, "local")


# --- item 9: logins, cancel, exposure ----------------------------------------------------------------------


def _login(url: str, user: str, password: str) -> int:
    return httpx.post(url + "login", data={"username": user, "password": password}, timeout=10).status_code


def _login_from(address: str, url: str, user: str, password: str, **headers: str) -> httpx.Response:
    """A real login whose connection comes from ``address`` (the client socket is bound to it)."""
    with httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=10) as client:
        return client.post(url + "login", data={"username": user, "password": password}, headers=headers)


def test_fifty_wrong_passwords_lock_that_user_name_only(guarded):
    _, url, guard = guarded
    codes = [_login(url, "alice", f"guess{i}") for i in range(50)]
    assert set(codes) == {400}
    assert guard.locked_for("alice", HOME) > 0
    assert _login(url, "alice", "a-pass") == 400  # locked: even the right password waits (was: no lockout)
    assert _login(url, "bob", "b-pass") == 200  # another user is unaffected
    wait_until(lambda: guard.locked_for("alice", HOME) == 0, timeout=10, what="alice's lock to expire")
    assert _login(url, "alice", "a-pass") == 200


LOCKOUT = re.compile(r"Too many failed logins for (\w+) from this address: try again in (\d+) s\.")


@contextmanager
def long_locks(guard: LoginGuard, seconds: float = 50.0) -> Iterator[None]:
    """A first lock long enough that no busy machine sees it expire mid-test (the shared guard's is 2 s)."""
    first = guard.first_lock
    guard.first_lock = seconds
    try:
        yield
    finally:
        guard.first_lock = first


def test_failing_for_a_name_from_another_address_never_locks_its_owner_out(guarded):
    """Issue 23 item 4: five wrong passwords for carol from anywhere locked carol everywhere, and her right
    password was answered "Incorrect credentials." for up to 5 minutes."""
    _, url, guard = guarded
    with long_locks(guard):
        codes = [_login_from(ELSEWHERE, url, "carol", f"guess{i}") for i in range(5)]
        assert [c.status_code for c in codes] == [400] * 5
        assert LOCKOUT.fullmatch(codes[-1].json()["detail"])  # the failure that locks says so at once
        locked = _login_from(ELSEWHERE, url, "carol", "c-pass")  # from there, even the right password waits
        match = LOCKOUT.fullmatch(locked.json()["detail"])
        assert locked.status_code == 400 and match, locked.text  # was: "Incorrect credentials."
        assert match.group(1) == "carol" and 1 <= int(match.group(2)) <= 50
        assert int(locked.headers["Retry-After"]) == int(match.group(2))
        assert guard.locked_for("carol", ELSEWHERE) > 0 and guard.locked_for("carol", HOME) == 0
        assert _login_from(HOME, url, "carol", "c-pass").status_code == 200  # was: 400, carol locked out


def test_a_forged_forwarding_header_does_not_move_a_lock(guarded):
    """Without FORWARDED_ALLOW_IPS naming a proxy, X-Forwarded-For is not believed (uvicorn believed it from any
    loopback peer): failures count against the real address, never against the one the header names."""
    _, url, guard = guarded
    with long_locks(guard):
        for i in range(5):
            _login_from(HOME, url, "dave", f"guess{i}", **{"X-Forwarded-For": ELSEWHERE})
        assert guard.locked_for("dave", HOME) > 0 and guard.locked_for("dave", ELSEWHERE) == 0
        assert _login_from(ELSEWHERE, url, "dave", "d-pass").status_code == 200
        forger = _login_from(HOME, url, "dave", "d-pass", **{"X-Forwarded-For": ELSEWHERE})
        assert LOCKOUT.fullmatch(forger.json()["detail"])  # the forger's own address is the one locked


def test_the_lock_doubles_with_each_further_failure_per_name_and_address():
    now = [0.0]
    guard = LoginGuard([("a", "p")], free_failures=2, first_lock=1.0, max_lock=5.0, clock=lambda: now[0])
    assert not guard("a", "x", "A") and guard.locked_for("a", "A") == 0
    for wait in (1.0, 2.0, 4.0, 5.0):  # the failure that locks says so at once; capped at max_lock
        with pytest.raises(LoginLocked, match=f"try again in {wait:.0f} s"):
            guard("a", "x", "A")
        assert guard.locked_for("a", "A") == wait
        assert guard("a", "p", "B") and guard.locked_for("a", "B") == 0  # another address logs in meanwhile
        with pytest.raises(LoginLocked):
            guard("a", "p", "A")  # locked: the right password waits too (and does not count as a failure)
        now[0] += wait
    assert guard("a", "p", "A") and guard.locked_for("a", "A") == 0


def test_a_lock_never_overflows_however_long_the_guessing_goes_on():
    now = [0.0]
    guard = LoginGuard([("a", "p")], free_failures=1, first_lock=1.0, max_lock=300.0, clock=lambda: now[0])
    for _ in range(1100):  # 2 ** 1024 is past a float: the doubling is capped before it gets there
        with pytest.raises(LoginLocked):
            guard("a", "x", "A")
        now[0] += guard.locked_for("a", "A")
    assert guard.locked_for("a", "A") == 0 and guard("a", "p", "A")


def test_waits_read_as_minutes_and_seconds_and_ipv6_counts_by_network():
    assert [wait_text(s) for s in (0.2, 42, 250, 300)] == ["1 s", "42 s", "4 min 10 s", "5 min"]
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert client_key("2001:db8:0:1::1") != client_key("2001:db8::1")
    assert client_key("::ffff:10.0.0.7") == client_key("10.0.0.7") == "10.0.0.7"


def _fn_index(client: Client, api_name: str) -> int:
    deps = client.config["dependencies"]
    return next(i for i, d in enumerate(deps) if d.get("api_name") == api_name)


def test_cancel_needs_a_login_and_cannot_stop_another_users_run(guarded):
    rt, url, _ = guarded
    alice = _client(url, "alice")
    job = alice.submit("long one", True, "custom", 300, 300, "Wait", 4, 0.8, 0.95, 1, True, api_name="/generate")
    started = {"PROCESSING", "ITERATING", "PROGRESS", "FINISHED"}  # a streaming run goes on to ITERATING quickly
    wait_until(lambda: job.status().code.name in started or job.done(), timeout=60, what="alice's run to start")
    fn = _fn_index(alice, "generate")
    body = {"session_hash": "madeup12345", "fn_index": fn, "event_id": "0" * 32}
    anonymous = httpx.post(url + "gradio_api/cancel", json=body, timeout=10)
    assert anonymous.status_code == 401  # was: {"success": true} for anybody
    bob = httpx.Client(base_url=url, timeout=10)
    assert bob.post("login", data={"username": "bob", "password": "b-pass"}).status_code == 200
    for session in ("madeup12345", "bobs-own-session"):  # alice's ids are random values only her page knows
        assert (
            bob.post("gradio_api/cancel", json={**body, "session_hash": session}).status_code == 404
        )  # not his: one sentence, no {"success": true}
    run = job.result(timeout=300)[2]
    assert run["samples"][0]["stop_reason"] != "cancelled" and run["samples"][0]["thinking_tokens"] == 300
    assert rt.db.get_run(run["run_id"]).status == "done"


def test_serving_on_all_interfaces_without_auth_warns_in_the_log_and_on_the_page(tiny_app, caplog, tmp_path):
    from app.settings import AppSettings
    from app.ui.server import launch_for_tests, start_up

    exposed = AppSettings.from_env(model="tiny", host="0.0.0.0", db=f"sqlite:///{tmp_path / 'x.db'}")
    with caplog.at_level(logging.WARNING):
        rt = start_up(exposed)
    assert any("without --auth" in r.getMessage() for r in caplog.records)
    demo, url = launch_for_tests(rt)
    try:
        components = Client(url, verbose=False).config["components"]
        banner = next(c for c in components if c.get("props", {}).get("elem_id") == "tracelab-exposure")
        assert "Open to anyone" in banner["props"]["value"] and "--auth" in banner["props"]["value"]
    finally:
        demo.close()
    assert exposure_warning(replace(exposed, auth="a:b")) is None
    assert exposure_warning(replace(exposed, host="127.0.0.1")) is None
    _, quiet_url = tiny_app  # the loopback test app has no banner
    ids = {c.get("props", {}).get("elem_id") for c in Client(quiet_url, verbose=False).config["components"]}
    assert "tracelab-exposure" not in ids
