"""Running the app: load the runtime, queue the events, launch Gradio (``python -m app serve``).

Owns the queue policy: every event that runs the model shares ``concurrency_id="model"`` with the
engine's limit (see ``app.ui.running.MODEL_QUEUE``: one in-process, more on a server); everything else runs up to
:data:`DEFAULT_CONCURRENCY` at a time. Tests use :func:`launch_for_tests` on a free loopback port.
"""

from __future__ import annotations

import logging
import socket

import gradio as gr

from app.engine.interface import engine_concurrency
from app.services.runtime import Runtime
from app.settings import AppSettings
from app.ui.app import CSS, build_demo
from app.ui.running import MODEL_QUEUE

log = logging.getLogger(__name__)

#: Concurrent events for everything that does not run the model (history queries, UI toggles).
DEFAULT_CONCURRENCY = 4
#: Events that may wait in the queue at once before new ones are refused.
MAX_QUEUE = 64


def prepare(demo: gr.Blocks, model_concurrency: int = 1) -> gr.Blocks:
    """Turn on the queue with tracelab's concurrency policy.

    ``model_concurrency`` is the engine's (app.engine.interface): 1 in-process, where generations queue on
    the model thread; more on an inference server, so several sessions generate at the same time.
    """
    for fn in demo.fns.values():
        if fn.concurrency_id == MODEL_QUEUE["concurrency_id"]:
            fn.concurrency_limit = model_concurrency
    return demo.queue(default_concurrency_limit=DEFAULT_CONCURRENCY, max_size=MAX_QUEUE)


def serve(settings: AppSettings) -> None:
    """Load the model, build the app and serve it until interrupted."""
    auth = settings.auth_pairs() or None  # a malformed --auth fails before the slow model load
    rt = Runtime.start(settings)
    demo = prepare(build_demo(rt), engine_concurrency(rt.engine))
    log.info("Serving on http://%s:%s", settings.host, settings.port)
    demo.launch(
        server_name=settings.host,
        server_port=int(settings.port),
        auth=auth,
        auth_message="tracelab: sign in with your annotator name" if auth else None,
        show_error=True,
        css=CSS,
        footer_links=["api", "settings"],
        run_history=False,
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def launch_for_tests(rt: Runtime, port: int | None = None) -> tuple[gr.Blocks, str]:
    """Launch the real app for ``rt`` on 127.0.0.1 without blocking; return it and its URL. Call ``demo.close()``."""
    demo = prepare(build_demo(rt), engine_concurrency(rt.engine))
    demo.launch(
        server_name="127.0.0.1",
        server_port=port or free_port(),
        prevent_thread_lock=True,
        quiet=True,
        show_error=True,
        css=CSS,
        footer_links=["api"],
        run_history=False,
    )
    return demo, demo.local_url.rstrip("/") + "/"
