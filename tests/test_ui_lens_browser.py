"""The trace lens in a real browser (headless Chromium) and through gradio_client, over the tiny model and a real
SQLite file: a real run drawn token by token in the Playground, a stored run with HTML payloads as tokens drawn
in History with its marks and nothing executed, and an old run without token data saying so."""

from __future__ import annotations

import pytest
from gradio_client import Client
from ui_support import wait_until

from app.domain import GenerationResult, GenerationSettings, SampleResult, TokenTrace
from app.services.runs import save_result

pytestmark = pytest.mark.browser

PAYLOADS = ('<img src=x onerror="window.__pwned=1">', "<script>window.__pwned=2</script>")


def _payload_run(rt) -> int:
    pieces = ["So ", PAYLOADS[0], " 13.", "\n", "Wait", ",", " hmm", " 26", "\n</think>\n\n", PAYLOADS[1], " 26"]
    n = len(pieces)
    entropy = [0.2, 2.9, 0.1, 0.05, None, 0.3, 2.5, 0.4, None, 1.0, 0.2]
    labels = "tttt" + "T" + "ttt" + "C" + "aa"
    trace = TokenTrace(
        token_ids=list(range(n)),
        labels=labels,
        prob=[None if e is None else 0.6 for e in entropy],
        entropy=entropy,
        top_ids=[[] if e is None else [100, 101] for e in entropy],
        top_probs=[[] if e is None else [0.6, 0.3] for e in entropy],
        source="sampled distribution (test)",
        pieces=pieces,
        vocab={100: '"><img src=x onerror=window.__pwned=4>', 101: "x"},
    )
    raw = "".join(pieces)
    sample = SampleResult(0, raw, "".join(pieces[:8]), "".join(pieces[9:]), 8, 2, "end", tokens=trace)
    result = GenerationResult(rt.loaded.name, rt.loaded.format.name, GenerationSettings(), [sample], "lens xss probe")
    return save_result(rt, result)


def _old_run(rt) -> int:
    sample = SampleResult(0, "<think>hm</think>4", "hm", "4", 1, 1, "end")  # saved without token data
    result = GenerationResult(rt.loaded.name, rt.loaded.format.name, GenerationSettings(), [sample], "lens old run")
    return save_result(rt, result)


def _open_in_history(page, run_id: int) -> None:
    page.locator("#history-run-id input").fill(str(run_id))
    page.locator("#history-open").click()


def test_lens_colours_a_real_run_and_a_stored_payload_run_without_running_it(page, tiny_app):
    rt, url = tiny_app
    payload_id, old_id = _payload_run(rt), _old_run(rt)
    page.goto(url)

    # Playground: a real generate with the lens on draws every generated token, coloured by entropy.
    page.get_by_label("custom").check()
    page.get_by_label("Max thinking tokens").fill("12")
    page.get_by_label("Max answer tokens").first.fill("6")
    page.locator("#playground-lens-toggle input").check()
    box = page.locator("#playground-prompt textarea")
    box.fill("lens: what is 6 x 7?")
    box.press("Enter")
    tokens = page.locator("#playground-lens .tl-t")
    wait_until(lambda: tokens.count() >= 12, timeout=120, what="the lens to draw the run's tokens")
    assert page.locator("#playground-lens .tl-forced").count() >= 1  # the budget cut's forced close tag
    assert page.locator("#playground-lens .tl-strip i").count() == tokens.count()
    assert "forking tokens (top 20%)" in page.locator("#playground-lens").inner_text()

    # History: the stored run with HTML payloads as token text.
    page.get_by_role("tab", name="History").click()
    _open_in_history(page, payload_id)
    page.locator("#history-lens-toggle input").check()
    lens = page.locator("#history-lens")
    wait_until(lambda: lens.locator(".tl-t").count() == 11, what="the stored run's tokens in the lens")
    text = lens.inner_text()
    assert PAYLOADS[0] in text and PAYLOADS[1] in text  # shown as text, exactly
    hot = lens.locator(".tl-t").nth(1)
    assert "rgba(249, 115, 22, 0.73)" in hot.get_attribute("style")  # entropy 2.9 (float16) of a 3-nat scale
    assert "p = 0.600" in hot.get_attribute("title") and "onerror=window.__pwned=4" in hot.get_attribute("title")
    assert lens.locator(".tl-fork").count() == 2  # round(0.2 * 9 sampled tokens)
    assert [lens.locator(".tl-fork").nth(i).get_attribute("data-index") for i in range(2)] == ["1", "6"]
    assert lens.locator(".tl-pivot").count() == 1  # " hmm"; the forced "Wait" is not the model's pivot
    assert lens.locator(".tl-forced").count() == 2
    assert page.evaluate("window.__pwned") == 0
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("#history-lens script").count() == 0

    # An older run: the lens says there is no token data rather than failing.
    _open_in_history(page, old_id)
    wait_until(lambda: "No token data for this run" in lens.inner_text(), what="the no-data message")
    assert lens.locator(".tl-t").count() == 0


def test_get_run_carries_the_token_lists_for_scripts(tiny_app):
    rt, url = tiny_app
    run_id = _payload_run(rt)
    client = Client(url, verbose=False)
    run = client.predict(run_id, api_name="/get_run")[-1]
    sample = run["samples"][0]
    assert sample["token_text"][1] == PAYLOADS[0] and sample["token_entropy"][1] == pytest.approx(2.9, abs=0.01)
    assert sample["token_forced"][4] is True and sample["token_prob"][4] is None
