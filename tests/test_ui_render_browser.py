"""Model and prompt text in a real Chromium: shown exactly as written, fetching nothing (issue 8, items 6, 10).

A local HTTP listener stands in for a remote host: markdown and HTML images pointing at it are typed into the
Playground and saved in a run's thinking and answer, then shown in the Playground, History and the
Self-consistency cards. The listener must see zero requests (before: 3 hits, with the app as Referer), and
code-like and math-like samples must read exactly as written (before: ``${7*7}`` showed as ``${77}``).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from test_ui_browser import _ask, _saved
from ui_support import wait_until

from app.domain import GenerationResult, GenerationSettings, SampleResult
from app.services.runs import save_result
from app.ui.render import safe_text

pytestmark = pytest.mark.browser

#: Text a reader must see character for character.
EXACT = (
    "${7*7}",
    "a*b*c and x_1 * y_2",
    "**not bold** __not bold__",
    "$$\\frac{a}{b}$$ and $x^2$",
    "1. not a list",
    "# not a heading",
    "> not a quote",
    "[link](javascript:alert(1))",
    "{{7*7}} <% x %>",
    "tab\\there & &amp; &#42;",
)


@pytest.fixture
def listener():
    """A local 'remote host' that counts every request made to it."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            hits.append(self.path)
            self.send_response(200)
            self.send_header("content-type", "image/png")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()


def _shown(locator) -> str:
    return locator.inner_text().replace("\xa0", " ")


def test_no_remote_fetch_and_exact_text_everywhere(browser, tiny_app, listener):
    rt, url = tiny_app
    remote, hits = listener
    images = f"![pixel]({remote}/md.png) <img src='{remote}/html.png'> ![ref][r]\n\n[r]: {remote}/ref.png"
    text = "\n".join(EXACT)
    result = GenerationResult(
        model=rt.loaded.name,
        format=rt.loaded.format.name,
        settings=GenerationSettings(samples=2),
        prompt=f"render probe {images}",
        messages=[{"role": "user", "content": f"render probe {images}"}],
        samples=[
            SampleResult(
                index=i,
                raw_text="",
                thinking=f"{images}\n{text}",
                answer=f"{images}\n{text}",
                thinking_tokens=9,
                answer_tokens=9,
                stop_reason="end",
            )  # fmt: skip
            for i in range(2)
        ],
    )
    run_id = save_result(rt, result, kind="consistency")

    context = browser.new_context(viewport={"width": 1400, "height": 1050})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(url)
        page.get_by_label("Thinking", exact=True).uncheck()
        page.get_by_label("Max answer tokens").first.fill("2")
        _ask(page, f"typed {images}\n{text}")
        _saved(page)
        chat = page.locator("#playground-chat")
        page.wait_for_timeout(1000)  # the follow-up save event ran; the chat and status must still be there
        assert "Saved as run #" in page.locator("#playground-stats").inner_text()
        for sample in EXACT:
            assert sample in _shown(chat), sample

        page.get_by_role("tab", name="History").click()
        page.locator("#history-run-id input").fill(str(run_id))
        page.locator("#history-open").click()
        viewer = page.locator("#history-chat")
        wait_until(lambda: "render probe" in viewer.inner_text(), what="the stored run")
        for title in viewer.locator(".thought-group .title").all():
            title.click()  # open the stored thinking blocks too
        wait_until(lambda: _shown(viewer).count("${7*7}") >= 4, what="thinking and answers of both samples")
        shown = _shown(viewer)
        for sample in EXACT:
            assert sample in shown, sample
        assert f"![pixel]({remote}/md.png)" in shown  # the image is shown as the text that was written

        page.get_by_role("tab", name="Self-consistency").click()
        page.locator("#tl-sc-run-id input").fill(str(run_id))  # the stored run's two samples as HTML cards
        page.locator("#tl-sc-pair").click()
        pair = page.locator("#tl-side-by-side")
        wait_until(lambda: "${7*7}" in _shown(pair), what="the side-by-side cards")
        for sample in EXACT:
            assert sample in _shown(pair), sample
        assert page.locator("img[src^='http://127.0.0.1']").count() == 0
        assert hits == []  # was: 3 hits, the app's address as Referer
    finally:
        context.close()


def test_safe_text_is_the_one_rendering_of_model_text():
    """Every view renders through safe_text: its output has no markdown or HTML left to interpret."""
    for sample in EXACT:
        out = safe_text(sample)
        assert not any(ch in out for ch in "*_[]()!<>`${}|\\"), (sample, out)
