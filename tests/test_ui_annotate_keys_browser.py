"""Fast shortcut keys in Annotate, in a real headless Chromium on the tiny-model app (real SQLite): keys pressed
50 ms apart give exactly one label per step, on consecutive steps, in the order pressed, shown on the steps at
once; also while the server's save path is slowed down, and while it fails for a while (the failed save is marked
on its step and retried, in order).

The app is served in this process (``tiny_app``), so ``monkeypatch`` on ``app.services.labeling.label_step``
changes what the served endpoint calls.
"""

from __future__ import annotations

import threading
import time

import pytest
from ui_support import wait_until

from app.domain import GenerationResult, GenerationSettings, SampleResult
from app.errors import DatabaseBusy
from app.services import labeling
from app.services.runs import save_result

pytestmark = pytest.mark.browser

THINKING = "\n\n".join(f"Step {i}: add {i} to the total." for i in range(1, 8))
KEYS = ["1", "3", "2", "1", "-", "+"]
EXPECTED = [1, -1, 0, 1, -1, 1]


@pytest.fixture
def sample_id(tiny_app) -> int:
    rt, _ = tiny_app
    result = GenerationResult(
        "tiny/test", "prompted", GenerationSettings(), [SampleResult(0, "", THINKING, "28", 40, 2, "end")],
        "Add 1 to 7.",
    )  # fmt: skip
    return rt.store.get_run(save_result(rt, result)).samples[0].sample_id


def open_sample(browser, url: str, annotator: str, sample_id: int):
    page = browser.new_context(viewport={"width": 1300, "height": 1600}).new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.get_by_role("tab", name="Annotate").click()
    box = page.locator("#tl-annotator textarea, #tl-annotator input").first
    box.fill(annotator)
    box.press("Enter")
    page.wait_for_selector("#tl-progress :text('samples labelled')")
    page.locator("#tl-pick input").fill(str(sample_id))
    page.locator("#tl-open").click()
    page.wait_for_selector(f"#tl-steps .tl-steps[data-sample-id='{sample_id}'] [data-pos]")
    page.locator("#tl-header").click()  # focus the page, not a text field, so the shortcuts apply
    return page


def shown(page) -> list[str]:
    return [el.get_attribute("data-rating") for el in page.query_selector_all("#tl-steps [data-pos]")]


def page_view(ratings: list[int], unlabelled: int) -> list[str]:
    return [str(r) for r in ratings] + [""] * unlabelled


def press_fast(page, keys: list[str]) -> None:
    for key in keys:
        page.keyboard.press(key)
        page.wait_for_timeout(50)


def stored(rt, sample_id: int, annotator: str) -> tuple[list[int | None], list[int]]:
    """(current rating per step in order, number of labels each step was ever given)."""
    steps = rt.store.steps_for_sample(sample_id)
    current = rt.store.current_labels(sample_id, annotator)
    ratings = [current[s.step_id].rating if s.step_id in current else None for s in steps]
    return ratings, [len(rt.store.label_history(s.step_id)) for s in steps]


def all_saved(rt, sample_id: int, annotator: str, n: int) -> bool:
    return sum(stored(rt, sample_id, annotator)[1]) >= n


def check_labels(rt, page, sample_id: int, annotator: str) -> None:
    n = len(KEYS)
    wait_until(lambda: all_saved(rt, sample_id, annotator, n), timeout=60, what="every save to reach the store",
               detail=lambda: str(stored(rt, sample_id, annotator)))  # fmt: skip
    wait_until(lambda: page.locator("#tl-save-status").inner_text() == "all labels saved", timeout=60,
               what="the status line to say all saved")  # fmt: skip
    ratings, counts = stored(rt, sample_id, annotator)
    rest = len(ratings) - n
    assert ratings == [*EXPECTED] + [None] * rest and counts == [1] * n + [0] * rest
    assert shown(page) == page_view(EXPECTED, rest)


def test_keys_50_ms_apart_give_one_label_per_step_in_order(tiny_app, browser, sample_id):
    rt, url = tiny_app
    page = open_sample(browser, url, "kim", sample_id)
    press_fast(page, KEYS)
    # applied in the page at once, before any answer
    assert shown(page) == page_view(EXPECTED, len(shown(page)) - len(EXPECTED))
    check_labels(rt, page, sample_id, "kim")
    page.context.close()


@pytest.mark.xfail(
    strict=False,
    reason="known race: once in 6 full-suite runs under load the page's selection never synced to the server "
    "within 60 s (every label was saved right); see the issue-29 note",
)
def test_the_selection_syncs_to_the_server_after_fast_keys(tiny_app, browser, sample_id):
    rt, url = tiny_app
    page = open_sample(browser, url, "kit", sample_id)
    press_fast(page, KEYS)
    check_labels(rt, page, sample_id, "kit")
    # The step after the last one rated is the server's current step too.
    n = len(KEYS)
    wait_until(lambda: page.locator("#tl-cursor input").input_value() == str(n), timeout=60, what="the cursor sync")
    page.context.close()


def test_keys_stay_on_their_steps_while_the_server_is_slow(tiny_app, browser, sample_id, monkeypatch):
    rt, url = tiny_app
    page = open_sample(browser, url, "lee", sample_id)
    real = labeling.label_step

    def slow(*args, **kwargs):
        time.sleep(0.4)
        return real(*args, **kwargs)

    monkeypatch.setattr(labeling, "label_step", slow)
    press_fast(page, KEYS)
    assert shown(page) == page_view(EXPECTED, len(shown(page)) - len(EXPECTED))
    check_labels(rt, page, sample_id, "lee")
    page.context.close()


def test_a_failed_save_is_shown_on_its_step_and_retried_in_order(tiny_app, browser, sample_id, monkeypatch):
    rt, url = tiny_app
    page = open_sample(browser, url, "max", sample_id)
    real, failures, lock = labeling.label_step, [3], threading.Lock()

    def flaky(*args, **kwargs):
        with lock:
            if failures[0] > 0:
                failures[0] -= 1
                raise DatabaseBusy("the database is busy (another writer holds it); try again in a moment")
        return real(*args, **kwargs)

    monkeypatch.setattr(labeling, "label_step", flaky)
    press_fast(page, KEYS)
    first = page.locator("#tl-steps [data-pos='0'] .tl-save-mark")
    first.filter(has_text="not saved yet").wait_for(timeout=30_000)
    assert "database is busy" in page.locator("#tl-save-status").inner_text()
    check_labels(rt, page, sample_id, "max")
    assert page.locator("#tl-steps .tl-save-mark:has-text('not saved')").count() == 0
    page.context.close()


def test_a_merge_clicked_while_saves_are_pending_acts_on_the_step_selected_in_the_page(
    tiny_app, browser, sample_id, monkeypatch
):
    """The merge button reads the server's selection: it waits until the queued save is through and the page's
    selection (moved on by the key) is synced, so it merges the step the person sees selected."""
    rt, url = tiny_app
    page = open_sample(browser, url, "ned", sample_id)
    page.get_by_text("Edit steps").click()
    page.locator("#tl-header").click()
    real = labeling.label_step

    def slow(*args, **kwargs):
        time.sleep(0.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(labeling, "label_step", slow)
    before = [s.step_id for s in rt.store.steps_for_sample(sample_id)]
    page.keyboard.press("1")  # step 0 rated; the selection moves to step 1 at once
    page.locator("#tl-merge").click()  # while the save is still on its way
    page.get_by_text("The merged step starts unlabelled").first.wait_for(timeout=30_000)
    after = [s.step_id for s in rt.store.steps_for_sample(sample_id)]
    assert after[0] == before[0] and before[1] not in after and before[2] not in after  # steps 1 and 2 merged
    assert rt.store.current_labels(sample_id, "ned")[before[0]].rating == 1
    page.context.close()


def test_a_step_clicked_then_merged_merges_that_step(tiny_app, browser, sample_id):
    """A click on a step selects it in the page and syncs it; a merge clicked next acts on it (not stuck waiting)."""
    rt, url = tiny_app
    page = open_sample(browser, url, "ola", sample_id)
    page.get_by_text("Edit steps").click()
    before = [s.step_id for s in rt.store.steps_for_sample(sample_id)]
    page.locator("#tl-steps [data-pos='2']").click()
    wait_until(lambda: page.locator("#tl-cursor input").input_value() == "2", timeout=30, what="step 2 selected")
    page.locator("#tl-merge").click()
    page.get_by_text("The merged step starts unlabelled").first.wait_for(timeout=30_000)
    after = [s.step_id for s in rt.store.steps_for_sample(sample_id)]
    assert after[:2] == before[:2] and before[2] not in after and before[3] not in after
    page.context.close()
