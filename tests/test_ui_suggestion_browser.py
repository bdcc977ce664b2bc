"""Auto labels pre-fill the rating buttons in a real headless Chromium (tiny-model app, real SQLite): the suggested
button is marked (dashed outline, "suggested (auto:mc, share …)") and nothing is a person's label until they click;
clicking another rating overrides and stores theirs; Accept stores the suggestion as their confirmation."""

from __future__ import annotations

import pytest
from ui_support import wait_until

from app.domain import GenerationResult, GenerationSettings, SampleResult
from app.services.runs import save_result
from app.ui.annotate_branch import SUGGESTED

pytestmark = pytest.mark.browser

THINKING = "Let x be the number.\n\nThen 2x = 10, so x = 5.\n\nCheck: 2 * 5 = 10."


@pytest.fixture
def auto_sample(tiny_app) -> tuple[int, list[int]]:
    """(sample id, step ids) of a stored sample whose steps 1 and 2 have auto labels (share 0.75 and 0.0)."""
    rt, _ = tiny_app
    result = GenerationResult(
        "tiny/test", "prompted", GenerationSettings(), [SampleResult(0, "", THINKING, "x = 5", 20, 3, "end")],
        "Solve 2x = 10 (suggestions).",
    )  # fmt: skip
    sample_id = rt.store.get_run(save_result(rt, result)).samples[0].sample_id
    steps = [s.step_id for s in rt.store.steps_for_sample(sample_id)]
    rt.store.add_auto_labels(sample_id, [(steps[0], 0.75), (steps[1], 0.0)], rollouts=4, target="5",
                             target_kind="gold", settings={"n": 4})  # fmt: skip
    return sample_id, steps


def _button(page, elem_id: str) -> dict:
    return page.evaluate(
        """id => { const el = document.getElementById(id);
                   const b = el.tagName === "BUTTON" ? el : el.querySelector("button");
                   return {text: b.innerText, classes: (b.className + " " + el.className),
                           outline: getComputedStyle(b).outlineStyle}; }""",
        elem_id,
    )


def test_suggested_button_is_marked_then_overridden_or_accepted_as_the_person(tiny_app, browser, auto_sample):
    rt, url = tiny_app
    sample_id, steps = auto_sample
    page = browser.new_context(viewport={"width": 1300, "height": 1600}).new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.get_by_role("tab", name="Annotate").click()
    name = page.locator("#tl-annotator textarea, #tl-annotator input").first
    name.fill("dana")
    name.press("Enter")
    page.wait_for_selector("#tl-progress :text('samples labelled')")
    page.locator("#tl-pick input").fill(str(sample_id))
    page.locator("#tl-open").click()
    page.wait_for_selector("#tl-steps [data-pos]")

    # Step 1: auto label good (share 0.75): "+1 good" is marked as a suggestion; nothing is dana's label yet.
    wait_until(lambda: SUGGESTED in _button(page, "tl-rate-good")["classes"], timeout=30, what="+1 to be marked")
    good = _button(page, "tl-rate-good")
    assert "suggested (auto:mc, share 0.75)" in good["text"] and good["outline"] == "dashed"
    assert SUGGESTED not in _button(page, "tl-rate-bad")["classes"]
    assert "suggested" not in _button(page, "tl-rate-bad")["text"]
    assert page.locator("#tl-steps [data-pos='0']").get_attribute("data-rating") == ""  # not shown as a label
    assert rt.store.current_labels(sample_id, "dana") == {}

    # dana overrides it with -1: her label is stored, and the selection moves on to step 2.
    page.locator("#tl-rate-bad").click()
    wait_until(lambda: steps[0] in rt.store.current_labels(sample_id, "dana"), timeout=30, what="the override")
    assert rt.store.current_labels(sample_id, "dana")[steps[0]].rating == -1
    wait_until(lambda: page.locator("#tl-cursor input").input_value() == "1", timeout=30, what="step 2 selected")

    # Step 2: auto label wrong (share 0.00): "-1 wrong" is the marked one now, "+1 good" is plain again.
    wait_until(lambda: SUGGESTED in _button(page, "tl-rate-bad")["classes"], timeout=30, what="-1 to be marked")
    assert "suggested (auto:mc, share 0.00)" in _button(page, "tl-rate-bad")["text"]
    good = _button(page, "tl-rate-good")
    assert SUGGESTED not in good["classes"] and "suggested" not in good["text"]
    assert steps[1] not in rt.store.current_labels(sample_id, "dana")
    page.locator("#tl-accept-suggestion").click()
    wait_until(lambda: steps[1] in rt.store.current_labels(sample_id, "dana"), timeout=30, what="the acceptance")
    label = rt.store.current_labels(sample_id, "dana")[steps[1]]
    assert label.rating == -1 and label.annotator == "dana"
    assert [h.annotator for h in rt.store.label_history(steps[1])] == ["dana"]
    wait_until(lambda: page.locator("#tl-steps [data-pos='1']").get_attribute("data-rating") == "-1", timeout=30,
               what="the step list to show dana's label")  # fmt: skip

    # Step 3 has no auto label: neither button is marked.
    wait_until(lambda: page.locator("#tl-cursor input").input_value() == "2", timeout=30, what="step 3 selected")
    wait_until(lambda: SUGGESTED not in _button(page, "tl-rate-bad")["classes"], timeout=30, what="marks cleared")
    assert SUGGESTED not in _button(page, "tl-rate-good")["classes"]
    assert "No auto label for this step" in page.locator("#tl-suggestion").inner_text()
    page.context.close()
