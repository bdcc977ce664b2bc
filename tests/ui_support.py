"""Helpers for the UI tests: the real app for a Runtime on a free loopback port (``make_runtime`` and
``running_app``, from ``bench/serving.py``), headless Chromium, polling, and raw calls to the HTTP API.

Nothing is faked: the app is ``build_demo`` + ``launch_for_tests`` over a real model and a real
SQLite file; the browser is Debian's Chromium driven by Playwright.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from serving import make_runtime, running_app  # noqa: F401 - the tests import these from here

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def require_chromium() -> None:
    """Skip (or, with ``TRACELAB_REQUIRE_BROWSER=1``, fail) when Chromium or Playwright is missing."""
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "Playwright for Python is not installed (pip install playwright)"
    if problem:
        if os.environ.get("TRACELAB_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests are required (TRACELAB_REQUIRE_BROWSER=1) but {problem}")
        pytest.skip(f"browser tests need Chromium: {problem}")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian Chromium under Playwright (its own browser download does not work here)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def wait_until(
    check: Callable[[], Any],
    timeout: float = 60.0,
    every: float = 0.05,
    what: str = "condition",
    detail: Callable[[], str] | None = None,
) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds, and
    with what ``detail()`` says of the state then (so a rare timeout can be diagnosed from the CI log)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            state = ""
            if detail is not None:
                try:
                    state = f"; state then: {detail()}"
                except Exception as exc:  # noqa: BLE001 - the timeout is the failure; the detail is a bonus
                    state = f"; (describing the state failed: {exc!r})"
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{state}")
        time.sleep(every)


def call_raw(url: str, api_name: str, data: list[Any], timeout: float = 120.0) -> tuple[str, Any]:
    """Call a named endpoint over Gradio's plain HTTP API (``/gradio_api/call/<name>``) and read its stream.

    Unlike ``gradio_client`` this can send any JSON, lone surrogates included (``json.dumps`` escapes them).
    Returns ``("complete", data)`` with the last output, or ``("error", message)``.
    """
    import json

    import httpx

    body = json.dumps({"data": data})  # ensure_ascii: "\ud800" travels as an escape, as a browser would send it
    headers = {"content-type": "application/json"}
    response = httpx.post(f"{url}gradio_api/call/{api_name}", content=body, headers=headers, timeout=timeout)
    if response.status_code != 200:
        return "error", f"HTTP {response.status_code}: {response.text}"
    event_id = response.json()["event_id"]
    kind, last = "error", None
    with httpx.stream("GET", f"{url}gradio_api/call/{api_name}/{event_id}", timeout=timeout) as stream:
        event = None
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error", "generating"):
                payload = line.split(":", 1)[1].strip()
                last = json.loads(payload) if payload and payload != "null" else None
                if event in ("complete", "error"):
                    kind = event
                    break
    return kind, last
