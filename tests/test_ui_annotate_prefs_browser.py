"""Preferences side by side in a real headless Chromium on the tiny-model app (real SQLite): the sample on screen
(A) and another sample of the same prompt (B) in two columns, each with its folded thinking and its answer;
← records "A is better", → "B is better", t a tie (recorded as nothing, said so), each followed by the next B."""

from __future__ import annotations

import pytest
from ui_support import wait_until

from app.domain import GenerationResult, GenerationSettings, SampleResult
from app.services.runs import save_result

pytestmark = pytest.mark.browser


@pytest.fixture
def sample_ids(tiny_app) -> list[int]:
    rt, _ = tiny_app
    samples = [
        SampleResult(i, "", f"Let me add.\n\nSo it is {7 + i}.", f"Final Answer: {7 + i}", 10, 3, "end")
        for i in range(4)
    ]
    result = GenerationResult("tiny/test", "prompted", GenerationSettings(), samples, "What is 3 + 4 (pairs)?")
    return [s.sample_id for s in rt.store.get_run(save_result(rt, result)).samples]


def side(page, which: str) -> int | None:
    el = page.query_selector(f"#tl-pref-{which} .tl-pref-side")
    return int(el.get_attribute("data-sample-id")) if el else None


def test_preferences_side_by_side_by_keyboard(tiny_app, browser, sample_ids):
    rt, url = tiny_app
    a, b1, b2, b3 = sample_ids
    page = browser.new_context(viewport={"width": 1280, "height": 1400}).new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.get_by_role("tab", name="Annotate").click()
    name = page.locator("#tl-annotator textarea, #tl-annotator input").first
    name.fill("pat")
    name.press("Enter")
    page.wait_for_selector("#tl-progress :text('samples labelled')")
    page.locator("#tl-pick input").fill(str(a))
    page.locator("#tl-open").click()
    page.wait_for_selector(f"#tl-steps .tl-steps[data-sample-id='{a}']")
    page.locator("#tl-preference").get_by_text("Preference: this sample (A)").click()
    wait_until(lambda: (side(page, "a"), side(page, "b")) == (a, b1), timeout=30, what="the first pair")

    # Side by side: A's column is left of B's, on the same line; each has its thinking folded and its answer.
    box_a = page.locator("#tl-pref-a").bounding_box()
    box_b = page.locator("#tl-pref-b").bounding_box()
    assert box_a["x"] + box_a["width"] <= box_b["x"] + 1 and abs(box_a["y"] - box_b["y"]) < 5
    assert "Final Answer: 7" in page.locator("#tl-pref-a").inner_text()
    assert "Final Answer: 8" in page.locator("#tl-pref-b").inner_text()
    assert page.locator("#tl-pref-a details").get_attribute("open") is None

    page.locator("#tl-header").click()  # focus the page, not a text field
    page.keyboard.press("ArrowRight")  # B is better
    wait_until(lambda: side(page, "b") == b2, timeout=30, what="the next B after B is better")
    page.keyboard.press("ArrowLeft")  # A is better
    wait_until(lambda: side(page, "b") == b3, timeout=30, what="the next B after A is better")
    page.keyboard.press("t")  # tie: nothing recorded
    said = page.locator("#tl-pref-said")
    wait_until(lambda: "nothing recorded" in said.inner_text(), timeout=30, what="the tie to be said")
    assert "Every other sample of this prompt is compared" in said.inner_text()
    pairs = [(p.chosen_sample_id, p.rejected_sample_id) for p in rt.store.preferences(annotator="pat")]
    assert pairs == [(b1, a), (a, b2)]
    page.context.close()
