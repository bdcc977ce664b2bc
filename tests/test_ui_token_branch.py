"""Click-to-branch from a lens token (issue 11), over the tiny model and a real SQLite file: the token -> step
mapping on a stored trace with known tokens and on real generated runs (a branch run's tokens cover only its
continuation), the ``/history_token_branch`` endpoint through gradio_client (the branch saved from the step
holding the token, its vote shown; a bad token is one clear message), and a real click in headless Chromium."""

from __future__ import annotations

import re

import pytest
from gradio_client import Client
from ui_support import wait_until

from app.domain import GenerationResult, GenerationSettings, SampleResult, TokenTrace
from app.services.runs import Saved, save_result
from app.services.think_longer import stream_think_longer
from app.ui.lens_branch import TokenPoint, locate

THINKING = "Let me think about this problem.\nFirst, 3 + 4 = 7.\nThen 7 * 2 = 14.\nHmm, actually the answer is 7."
ANSWER = "Final Answer: 7"
#: Token texts: a lone newline, or optional spaces and a word.
PIECES = [*re.findall(r"\n|[^\S\n]*\S+", THINKING), "\n</think>\n\n", *re.findall(r"[^\S\n]*\S+", ANSWER)]


def _stored_run(rt) -> int:
    """A trace with per-token data whose tokens are known (4 thinking steps, a closing tag, the answer)."""
    assert "".join(PIECES) == f"{THINKING}\n</think>\n\n{ANSWER}"
    n_think = PIECES.index("\n</think>\n\n")
    labels = "t" * n_think + "c" + "a" * (len(PIECES) - n_think - 1)
    n = len(PIECES)
    trace = TokenTrace(list(range(n)), labels, [0.5] * n, [0.7] * n, [[] for _ in PIECES], [[] for _ in PIECES],
                       "sampled distribution (test)", PIECES)  # fmt: skip
    sample = SampleResult(0, "".join(PIECES), THINKING, ANSWER, n_think, n - n_think - 1, "end", tokens=trace)
    settings = GenerationSettings(max_thinking_tokens=40, max_answer_tokens=8, temperature=0.8)
    return save_result(
        rt, GenerationResult(rt.loaded.name, rt.loaded.format.name, settings, [sample], "What is 3 + 4?")
    )


def _token(text: str) -> int:
    """0-based index of the first token whose text is ``text``."""
    return PIECES.index(text)


def test_a_token_maps_to_the_step_that_holds_it(tiny_runtime):
    rt = tiny_runtime
    run_id = _stored_run(rt)
    steps = rt.db.get_run(run_id).samples[0].steps
    assert [s.text.strip() for s in steps[:2]] == ["Let me think about this problem.", "First, 3 + 4 = 7."]
    assert locate(rt, run_id, 0, 0).step == 0  # "Let"
    assert locate(rt, run_id, 0, _token(" problem.")).step == 0
    assert locate(rt, run_id, 0, _token(" problem.") + 1).step == 0  # the newline after step 1 ends step 1
    assert locate(rt, run_id, 0, _token("First,")).step == 1
    assert locate(rt, run_id, 0, _token(" 14.")).step == 2
    point = locate(rt, run_id, 0, _token("Hmm,"))
    assert (point.step, point.piece, point.step_text.strip()) == (3, "Hmm,", "Hmm, actually the answer is 7.")
    with pytest.raises(ValueError, match=r"token \d+ of sample 1 .* is in the answer, not thinking"):
        locate(rt, run_id, 0, len(PIECES) - 1)
    with pytest.raises(ValueError, match="the tag that closes the thinking"):
        locate(rt, run_id, 0, _token("\n</think>\n\n"))
    with pytest.raises(ValueError, match=rf"token 1000 does not exist: .* has tokens 1 to {len(PIECES)}"):
        locate(rt, run_id, 0, 999)

    payload = TokenPoint(run_id, 0, 3, 1, "<img src=x onerror=alert(1)>", "<script>alert(2)</script> ${x}")
    shown = payload.describe()
    assert "<img" not in shown and "<script" not in shown and "${" not in shown and "&#60;img" in shown


def test_a_think_longer_run_maps_every_thinking_token_into_its_step(tiny_runtime):
    """A "Think longer" run's tokens cover only its continuation, after the parent's whole thinking and "Wait":
    each word token the model wrote must land in the step whose text holds it."""
    rt = tiny_runtime
    parent = _stored_run(rt)
    settings = GenerationSettings(max_thinking_tokens=24, max_answer_tokens=4, temperature=0.8, seed=5)
    saved = [e for e in stream_think_longer(rt, parent, 0, settings=settings) if isinstance(e, Saved)][-1]
    sample = rt.db.get_run(saved.run_id).samples[0]
    trace = sample.tokens
    assert trace is not None and sample.thinking.startswith(THINKING)
    checked = 0
    for j, piece in enumerate(trace.pieces):
        if trace.labels[j] != "t" or not piece.strip():
            continue
        point = locate(rt, saved.run_id, 0, j)
        step = sample.steps[point.step]
        assert point.step >= 3  # the continuation comes after the parent's steps (its last one ends with "Wait")
        assert piece.strip() in step.text, (j, piece, step.text)
        checked += 1
    assert checked > 0


def test_token_branch_endpoint_branches_from_the_tokens_step_and_refuses_bad_tokens(tiny_app):
    rt, url = tiny_app
    run_id = _stored_run(rt)
    client = Client(url, verbose=False)
    token = _token("First,") + 1  # 1-based, as the lens sends it
    html = client.predict({"run_id": run_id}, 1, token, 2, "7", api_name="/history_token_branch")
    assert "branching from <b>step 2</b> (the step containing this token" in html
    branch = int(re.search(r"Saved as run #(\d+)", html).group(1))
    link = rt.db.branch_of(branch)
    assert (link.parent_run_id, link.parent_sample_index, link.parent_step_index, link.kind) == (
        run_id, 0, 1, "resample")  # fmt: skip
    assert re.search(r"\d of 2 rollouts finished an answer|no rollout finished an answer", html)
    assert len(rt.db.get_run(branch).samples) == 2

    with pytest.raises(Exception, match=rf"token 999 does not exist: sample 1 of run {run_id} has tokens 1 to"):
        client.predict(run_id, 1, 999, 2, "", api_name="/history_token_branch")
    with pytest.raises(Exception, match="is in the answer, not thinking; click a thinking token"):
        client.predict(run_id, 1, len(PIECES), 2, "", api_name="/sc_token_branch")
    with pytest.raises(Exception, match="run 987654 does not exist"):
        client.predict(987654, 1, 1, 2, "", api_name="/pg_token_branch")
    with pytest.raises(Exception, match="no token selected"):
        client.predict(run_id, None, None, 2, "", api_name="/history_token_branch")


@pytest.mark.browser
def test_clicking_a_generated_token_in_the_playground_lens_branches_from_its_step(tiny_app, browser):
    rt, url = tiny_app
    page = browser.new_context(viewport={"width": 1400, "height": 1400}).new_page()
    page.set_default_timeout(60_000)
    page.add_init_script("window.__pwned = 0")
    page.goto(url)
    page.get_by_label("custom").check()
    page.get_by_label("Max thinking tokens").fill("24")
    page.get_by_label("Max answer tokens").first.fill("6")
    page.get_by_label("Temperature").first.fill("0.8")
    page.locator("#playground-lens-toggle input").check()
    box = page.locator("#playground-prompt textarea")
    box.fill("click-to-branch: what is 6 x 7?")
    box.press("Enter")
    stats = page.locator("#playground-stats")
    text = wait_until(lambda: "Saved as run #" in (t := stats.inner_text()) and t, timeout=120, what="the saved run")
    run_id = int(text.split("run #")[1].split()[0])
    visible = """() => [...document.querySelectorAll('#playground-lens .tl-t:not(.tl-ans):not(.tl-forced)')]
                         .filter(t => t.textContent.trim()).map(t => Number(t.dataset.index))"""
    indexes = wait_until(lambda: len(i := page.evaluate(visible)) >= 3 and i, timeout=60, what="thinking tokens")
    index = indexes[len(indexes) // 2]  # a thinking token with visible text, mid-trace
    page.locator(f"#playground-lens .tl-t[data-index='{index}']").click()
    where = page.locator("#tl-pg-token-where")
    wait_until(lambda: "branching from" in where.inner_text(), timeout=30, what="the clicked token's step")
    expected = locate(rt, run_id, 0, index)
    assert f"Token {index + 1} " in where.inner_text()
    assert f"branching from step {expected.step + 1} (the step containing this token" in where.inner_text()
    assert page.locator("#tl-pg-token input").input_value() == str(index + 1)

    page.locator("#tl-pg-tn input").fill("2")
    page.locator("#tl-pg-tn input").press("Enter")
    cost = page.locator("#tl-pg-token-cost")  # said before any rollout starts: N × the default budget
    wait_until(lambda: "2 rollouts × up to 256 new thinking tokens" in cost.inner_text(), timeout=30,
               what="the cost line")  # fmt: skip
    page.locator("#tl-pg-token-branch").click()
    result = page.locator("#tl-pg-token-result .tl-branch-result")
    result.wait_for(timeout=180_000)
    branch = int(result.get_attribute("data-run"))
    assert re.search(r"\d of 2 rollouts finished an answer|no rollout finished an answer", result.inner_text())
    link = rt.db.branch_of(branch)
    assert (link.parent_run_id, link.parent_step_index, link.kind) == (run_id, expected.step, "resample")
    assert page.evaluate("window.__pwned") == 0
    page.context.close()
