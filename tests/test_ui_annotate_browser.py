"""The Annotate tab in a real headless Chromium: two browser contexts are two annotators labelling the same
sample at the same time with the keyboard shortcuts; nothing is lost, each sees their own labels, typing in the
comment box rates nothing, and a label on a step someone merged meanwhile is refused with a visible warning.
"""

from __future__ import annotations

import pytest
from ui_support import wait_until

from app.domain import GenerationResult, GenerationSettings, SampleResult
from app.services import labeling
from app.services.runs import save_result

pytestmark = pytest.mark.browser

THINKING = "Let x be the number.\n\nThen 2x = 10, so x = 5.\n\nCheck: 2 * 5 = 10."
PAYLOAD = "<img src=x onerror=window.__pwned=1>"


@pytest.fixture(scope="module")
def sample_id(tiny_app) -> int:
    rt, _ = tiny_app
    result = GenerationResult(
        "tiny/test",
        "prompted",
        GenerationSettings(),
        [SampleResult(0, "", THINKING, f"x = 5 {PAYLOAD}", 20, 3, "end")],
        f"Solve 2x = 10. {PAYLOAD}",
    )
    return rt.store.get_run(save_result(rt, result)).samples[0].sample_id


def ratings(page) -> list[str]:
    return [el.get_attribute("data-rating") for el in page.query_selector_all("#tl-steps [data-pos]")]


def open_as(browser, url: str, annotator: str, sample_id: int):
    page = browser.new_context(viewport={"width": 1300, "height": 1600}).new_page()
    page.goto(url)
    page.get_by_role("tab", name="Annotate").click()
    box = page.locator("#tl-annotator textarea, #tl-annotator input").first
    box.fill(annotator)
    box.press("Enter")
    page.wait_for_selector("#tl-progress :text('samples labelled')")
    page.locator("#tl-pick input").fill(str(sample_id))
    page.locator("#tl-open").click()
    page.wait_for_selector("#tl-steps [data-pos]")
    page.locator("#tl-header").click()  # focus the page, not a text field, so the shortcuts apply
    return page


def test_two_annotators_label_one_sample_at_once_with_shortcuts_and_lose_nothing(tiny_app, browser, sample_id):
    rt, url = tiny_app
    alice = open_as(browser, url, "alice", sample_id)
    bob = open_as(browser, url, "bob", sample_id)
    n = len(ratings(alice))
    assert n == 4 and ratings(bob) == [""] * n
    for i in range(n):  # both keys are pressed before either answer comes back
        alice.keyboard.press("1")
        bob.keyboard.press("-")
        wait_until(lambda i=i: ratings(alice)[: i + 1] == ["1"] * (i + 1), timeout=20, what=f"alice's label {i}")
        wait_until(lambda i=i: ratings(bob)[: i + 1] == ["-1"] * (i + 1), timeout=20, what=f"bob's label {i}")
    # the ratings show at once; the progress line comes with the server's render once the saves are through
    wait_until(lambda: alice.locator("#tl-progress").inner_text().startswith("1 of "), timeout=20, what="progress")
    store_ratings = {name: [r.rating for r in rt.store.current_labels(sample_id, name).values()] for name in ("alice", "bob")}  # fmt: skip
    assert store_ratings == {"alice": [1] * n, "bob": [-1] * n}
    assert alice.evaluate("window.__pwned") is None and PAYLOAD in alice.locator("#tl-header").inner_text()

    # j / k move the selection; digits typed into the comment box are text, not ratings.
    cursor = alice.locator("#tl-cursor input")
    alice.keyboard.press("k")
    wait_until(lambda: cursor.input_value() == str(n - 2), timeout=20, what="k to select the previous step")
    alice.locator("#tl-comment textarea").press_sequentially("3 - 1 f")
    alice.locator("#tl-header").click()
    alice.keyboard.press("j")
    wait_until(lambda: cursor.input_value() == str(n - 1), timeout=20, what="j to select the next step")
    assert sum(len(rt.store.label_history(s.step_id)) for s in rt.store.steps_for_sample(sample_id)) == 2 * n

    # A merge of the first two steps lands while alice still sees them: her label is refused, visibly, and reloads.
    alice.locator("#tl-steps [data-pos='0']").click()
    wait_until(lambda: cursor.input_value() == "0", timeout=20, what="a click to select step 0")
    steps = rt.store.steps_for_sample(sample_id)
    labeling.merge_steps(rt.store, sample_id, steps[0].step_id)
    alice.keyboard.press("2")
    alice.get_by_text("no longer one of sample").first.wait_for(timeout=20_000)
    wait_until(lambda: ratings(alice) == [""] + ["1"] * (n - 2), timeout=20, what="alice's view to reload")

    # Merging with the button says the merged step starts unlabelled (its parts' labels don't carry over).
    alice.get_by_text("Edit steps").click()
    alice.locator("#tl-merge").click()
    alice.get_by_text("The merged step starts unlabelled").first.wait_for(timeout=20_000)
    wait_until(lambda: ratings(alice)[0] == "" and len(ratings(alice)) == n - 2, timeout=20, what="the merged view")
