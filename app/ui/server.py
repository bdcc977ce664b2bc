"""Running the app: load the runtime, queue the events, launch Gradio (``python -m app serve``).

Owns the queue policy: every event that runs the model shares ``concurrency_id="model"`` with the
engine's limit (see ``app.ui.running.MODEL_QUEUE``: one in-process, more on a server); everything else runs up to
:data:`DEFAULT_CONCURRENCY` at a time; the queue looks for work every :data:`QUEUE_POLL_SECONDS` when idle. Tests use :func:`launch_for_tests` on a free loopback port.
"""

from __future__ import annotations

import logging
import socket
import threading

import gradio as gr

from app.engine.interface import engine_concurrency
from app.services.recording import keep_recovering, recover_stale_runs
from app.services.runtime import Runtime
from app.settings import AppSettings
from app.ui.app import CSS, build_demo
from app.ui.running import MODEL_QUEUE
from app.ui.security import LoginGuard, cancel_guard, distrust_forwarding, exposure_warning, lock_rule

log = logging.getLogger(__name__)

#: Concurrent events for everything that does not run the model (history queries, UI toggles).
DEFAULT_CONCURRENCY = 4
#: Events that may wait in the queue at once before new ones are refused.
MAX_QUEUE = 64
#: How often Gradio's queue loop looks for work while it has none. Gradio polls every 1 ms (50 ms on Windows);
#: each wake-up takes the GIL from the model thread's Python side, and bench/cpu_bench.py measured the
#: Playground at 24.6 tok/s with 1 ms and 27.9 tok/s with 10 ms (CLI in the same process: 26.2 vs 29.0).
#: An event now waits at most 10 ms more to start.
QUEUE_POLL_SECONDS = 0.01


def prepare(demo: gr.Blocks, model_concurrency: int = 1) -> gr.Blocks:
    """Turn on the queue with tracelab's concurrency policy.

    ``model_concurrency`` is the engine's (app.engine.interface): 1 in-process, where generations queue on
    the model thread; more on an inference server, so several sessions generate at the same time.
    """
    for fn in demo.fns.values():
        if fn.concurrency_id == MODEL_QUEUE["concurrency_id"]:
            fn.concurrency_limit = model_concurrency
    demo = demo.queue(default_concurrency_limit=DEFAULT_CONCURRENCY, max_size=MAX_QUEUE)
    queue = demo._queue  # Gradio has no public knob for its idle poll (see QUEUE_POLL_SECONDS)
    if hasattr(queue, "sleep_when_free"):  # a Gradio that renamed it fails tests/test_ui_server.py, not the app
        queue.sleep_when_free = max(queue.sleep_when_free, QUEUE_POLL_SECONDS)
    return demo


def serve(settings: AppSettings) -> None:
    """Load the model, build the app and serve it until interrupted.

    Before serving: a read-only database is refused (``Runtime.start``), runs a dead process left ``running``
    become ``interrupted`` (see ``start_up``; and every 30 s while serving), and listening beyond this machine without ``--auth`` is warned
    about. Logins back off per name and client address (``app.ui.security``); ``X-Forwarded-For`` counts only
    from the proxies named in ``FORWARDED_ALLOW_IPS``.
    """
    pairs = settings.auth_pairs()  # a malformed --auth fails before the slow model load
    rt = start_up(settings)
    demo = prepare(build_demo(rt), engine_concurrency(rt.engine))
    log.info("Serving on http://%s:%s", settings.host, settings.port)
    keep_recovering(rt.db, threading.Event())  # runs other processes leave behind while this one serves
    distrust_forwarding()
    demo.launch(
        server_name=settings.host,
        server_port=int(settings.port),
        auth=LoginGuard(pairs) if pairs else None,
        auth_message=f"tracelab: sign in with your annotator name. {lock_rule()}" if pairs else None,
        show_error=True,
        css=CSS,
        footer_links=["api", "settings"],
        run_history=False,
        app_kwargs=cancel_guard(),
    )


def start_up(settings: AppSettings) -> Runtime:
    """What ``serve`` does before it listens: load the runtime (refusing a read-only database), mark runs a
    dead server or CLI process left ``running`` as ``interrupted`` (judged by their heartbeat: a live run of
    another process is left alone), and warn when the app is open to anyone."""
    rt = Runtime.start(settings)
    recover_stale_runs(rt.db)
    warning = exposure_warning(settings)
    if warning:
        log.warning(warning)
    return rt


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def launch_for_tests(rt: Runtime, port: int | None = None, auth: LoginGuard | None = None) -> tuple[gr.Blocks, str]:
    """Launch the real app for ``rt`` on 127.0.0.1 without blocking; return it and its URL. Call ``demo.close()``.

    ``auth``: a :class:`LoginGuard`, as ``serve`` installs for ``--auth``."""
    demo = prepare(build_demo(rt), engine_concurrency(rt.engine))
    distrust_forwarding()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port or free_port(),
        prevent_thread_lock=True,
        quiet=True,
        show_error=True,
        css=CSS,
        footer_links=["api"],
        run_history=False,
        auth=auth,
        app_kwargs=cancel_guard(),
    )
    return demo, demo.local_url.rstrip("/") + "/"
