"""The app in a real browser: headless Debian Chromium driven by Playwright for Python.

What a person sees: thinking streams into an open block while the model runs, the block closes when
thinking is done and opens again on a click, the answer and its numbers appear, Stop keeps what was
written, the run is in History after a reload, and HTML/JS in prompts or model output stays text.
Set ``TRACELAB_SCREENSHOT_DIR`` to also copy the playground screenshot there (README: assets/).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from ui_support import wait_until

from app.domain import GenerationResult, GenerationSettings, SampleResult
from app.services.runs import save_result

pytestmark = pytest.mark.browser

PAYLOADS = (
    '<img src=x onerror="window.__pwned=1">',
    "<script>window.__pwned=2</script>",
    '<a href="javascript:window.__pwned=3">click me</a>',
)
THOUGHT = "#playground-chat .thought-group"
# The screenshot's budget: small enough for a CPU test, larger (env) when making the README picture.
BUNDLED_THINKING = int(os.environ.get("TRACELAB_SCREENSHOT_THINKING", "32"))
BUNDLED_ANSWER = int(os.environ.get("TRACELAB_SCREENSHOT_ANSWER", "32"))


def _settings(page, *, max_thinking: int, min_thinking: int = 0, answer: int = 24, sampled: bool = True) -> None:
    """Custom budget in the side panel; sampling so the tiny model writes visible (random) words."""
    page.get_by_label("custom").check()
    page.get_by_label("Max thinking tokens").fill(str(max_thinking))
    page.get_by_label("Min thinking tokens").fill(str(min_thinking))
    page.get_by_label("Max answer tokens").first.fill(str(answer))
    if sampled:
        page.get_by_label("Temperature").first.fill("0.8")
        page.get_by_label("Seed").fill("1")


def _ask(page, prompt: str) -> None:
    box = page.locator("#playground-prompt textarea")
    box.fill(prompt)
    box.press("Enter")


def _saved(page, before: str = "", timeout: float = 60) -> int:
    """Wait until the status line says a (new) run was saved; return its number."""
    stats = page.locator("#playground-stats")

    def state() -> str:
        stop = page.locator("#playground-stop")
        chat = page.locator("#playground-chat").inner_text()
        return (
            f"status line {stats.inner_text()!r}, Stop enabled {stop.is_enabled()}, "
            f"{len(chat)} characters in the chat, ending {chat[-160:]!r}"
        )

    text = wait_until(
        lambda: (t := stats.inner_text()) != before and "Saved as run #" in t and t,
        timeout=timeout,
        what="the run to finish and be saved",
        detail=state,
    )
    page.wait_for_selector("#playground-send:not([disabled])")
    return int(text.split("run #")[1].split()[0])


# Records, on every DOM change, whether an open thinking block with a spinner already shows text:
# the proof that thinking streams while the model still runs, however fast the model is.
WATCH_LIVE_THINKING = """() => {
    window.__liveThinking = "";
    new MutationObserver(() => {
        const group = document.querySelector("#playground-chat .thought-group");
        const spinner = group && group.querySelector(".loading-spinner");
        const content = group && group.querySelector(".content");
        const text = content ? content.innerText.replace(/[\\s…]/g, "") : "";
        if (spinner && text && document.querySelector("#playground-send").disabled) {
            window.__liveThinking = window.__liveThinking.length < text.length ? text : window.__liveThinking;
        }
    }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def test_thinking_streams_open_then_collapses_and_the_run_is_in_history(page, tiny_app):
    page.goto(tiny_app[1])
    page.evaluate(WATCH_LIVE_THINKING)
    _settings(page, max_thinking=120, min_thinking=120)
    _ask(page, "browser probe: what is 6 x 7?")

    # 1. While generating (Send disabled), the block is open with a spinner and already shows thinking text.
    _saved(page)
    title = page.locator(f"{THOUGHT} .title").first
    assert page.evaluate("window.__liveThinking"), "no thinking text was shown while the model was running"

    # 2. Done: the block closed, its title carries the numbers; the answer and the stats are below.
    wait_until(lambda: page.locator(f"{THOUGHT} .content").count() == 0, what="the thinking block to collapse")
    assert page.locator(f"{THOUGHT} .loading-spinner").count() == 0
    assert "expanded" not in (title.get_attribute("class") or "")
    assert "Thought for" in title.inner_text() and "120 tokens" in title.inner_text()
    chat = page.locator("#playground-chat")
    assert "Final Answer:" in chat.inner_text() and "cut by budget at 120 tokens" in chat.inner_text()
    assert "Saved as run #" in page.locator("#playground-stats").inner_text()

    # 3. A click opens it again, showing the thinking that streamed.
    title.click()
    content = page.locator(f"{THOUGHT} .content").first
    content.wait_for()
    assert "expanded" in (title.get_attribute("class") or "")
    shown = content.inner_text()
    assert page.evaluate("window.__liveThinking")[:20] in re.sub(r"[\s…]", "", shown)

    # 4. After a reload the run is in History, and opens with its (closed) trace.
    page.reload()
    page.get_by_role("tab", name="History").click()
    row = page.locator("#history-table").get_by_text("browser probe: what is 6 x 7?").filter(visible=True)
    row.first.wait_for()
    row.first.click()
    viewer = page.locator("#history-chat .thought-group .title")
    viewer.first.wait_for()
    assert "Thought for" in viewer.first.inner_text()
    assert "cut by budget at 120 tokens" in page.locator("#history-chat").inner_text()


def test_stop_keeps_what_was_generated(page, tiny_app, load):
    """Stop ends in the saved run's status line, also on a loaded machine (was: "Stopping…" for good, when
    Stop's own answer landed after the run's last update)."""
    page.goto(tiny_app[1])
    _settings(page, max_thinking=4000, min_thinking=4000)
    _ask(page, "stop probe")
    content = page.locator(f"{THOUGHT} .content").first
    wait_until(lambda: content.count() and content.inner_text().strip(" …\n"), what="thinking text")
    assert page.locator(f"{THOUGHT} .loading-spinner").count() == 1
    _ask(page, "a second question while it runs")  # refused, not silently dropped: it stays in the box
    wait_until(lambda: "still being written" in page.inner_text("body"), what="the busy message")
    assert page.locator("#playground-prompt textarea").input_value() == "a second question while it runs"
    page.locator("#playground-stop").click()
    run_id = _saved(page)
    assert "stopped by you (cancelled)" in page.locator("#playground-chat").inner_text()
    assert page.locator(f"{THOUGHT} .loading-spinner").count() == 0
    stored = tiny_app[0].store.get_run(run_id)
    assert stored.status == "cancelled" and stored.samples[0].thinking


def test_html_and_js_in_prompts_and_model_output_render_as_text(page, tiny_app):
    rt, url = tiny_app
    payload = " ".join(PAYLOADS)
    # A real model cannot be made to write these on cue, so the run is saved as if it had.
    result = GenerationResult(
        model=rt.loaded.name,
        format=rt.loaded.format.name,
        settings=GenerationSettings(),
        prompt=f"xss probe {payload}",
        messages=[{"role": "user", "content": f"xss probe {payload}"}],
        samples=[
            SampleResult(
                index=0,
                raw_text="",
                thinking=f"thinking {payload}",
                answer=f"answer {payload}\n```html\n{PAYLOADS[0]}\n```\nand in code: `{PAYLOADS[1]}`",
                thinking_tokens=9,
                answer_tokens=9,
                stop_reason="end",
            )
        ],
    )
    run_id = save_result(rt, result)

    page.goto(url)
    page.get_by_label("Thinking", exact=True).uncheck()
    page.get_by_label("Max answer tokens").first.fill("4")
    _ask(page, f"typed {payload}")
    _saved(page)
    assert f"typed {payload}" in page.locator("#playground-chat").inner_text()

    page.get_by_role("tab", name="History").click()
    page.locator("#history-table").get_by_text("xss probe").filter(visible=True).first.wait_for()
    # the run typed after the page loaded is listed too: opening the tab refreshes the table
    page.locator("#history-table").get_by_text("typed", exact=False).filter(visible=True).first.wait_for()
    page.locator("#history-run-id input").fill(str(run_id))
    page.locator("#history-open").click()
    page.locator("#history-chat .thought-group .title").first.click()  # open the stored thinking
    viewer = page.locator("#history-chat")
    wait_until(lambda: f"thinking {payload}" in viewer.inner_text(), what="the payload thinking as text")
    for shown in (f"answer {payload}", f"xss probe {payload}", f"\n{PAYLOADS[0]}\n", f"and in code: {PAYLOADS[1]}"):
        assert shown in viewer.inner_text()

    assert page.evaluate("window.__pwned") == 0
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("a[href^='javascript']").count() == 0
    assert page.locator("#playground-chat script, #history-chat script, #history-table script").count() == 0


@pytest.mark.bundled
def test_playground_screenshot_with_the_bundled_model(page, bundled_app, tmp_path):
    page.goto(bundled_app[1])
    assert "Small demo model" in page.locator("#tracelab-header").inner_text()
    _settings(page, max_thinking=BUNDLED_THINKING, answer=BUNDLED_ANSWER, sampled=False)
    page.get_by_text("Janet’s ducks lay 16 eggs").first.click()
    box = page.locator("#playground-prompt textarea")
    wait_until(lambda: "Janet" in box.input_value(), what="the example to fill the prompt")
    page.locator("#playground-send").click()
    page.wait_for_selector(f"{THOUGHT} .loading-spinner")
    _saved(page, timeout=300)  # ~15 tokens/s on a free 2-core CPU, far less when it is busy
    page.locator(f"{THOUGHT} .title").first.click()  # show the trace in the picture
    page.locator(f"{THOUGHT} .content").first.wait_for()
    shot = tmp_path / "playground.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if target := os.environ.get("TRACELAB_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(target) / "playground.png")


def _idle_again(page) -> None:
    """Send is usable again and Stop is off: the Playground left its busy state."""
    wait_until(
        lambda: page.locator("#playground-send").is_enabled() and not page.locator("#playground-stop").is_enabled(),
        timeout=15,
        what="the Playground to be idle again (Send on, Stop off)",
    )


def test_a_refused_input_leaves_the_playground_usable_and_keeps_the_prompt(page, tiny_app):
    page.goto(tiny_app[1])
    page.locator("#playground-think-longer").click()  # nothing to continue yet
    wait_until(lambda: "ask something first" in page.inner_text("body"), what="the Think longer message")
    _idle_again(page)
    _settings(page, max_thinking=8, answer=4, sampled=False)
    page.get_by_label("Max thinking tokens").fill("-5")  # the box's range check refuses it, naming the box
    _ask(page, "keep this prompt")
    wait_until(lambda: "Max thinking tokens must be at least 0" in page.inner_text("body"), what="the range message")
    _idle_again(page)
    assert page.locator("#playground-prompt textarea").input_value() == "keep this prompt"
    page.get_by_label("Max thinking tokens").fill("8")
    page.locator("#playground-send").click()
    _saved(page)  # and it runs once the input is fixed
