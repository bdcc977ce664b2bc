"""Is anybody still listening? Stop a model run whose client has gone, so one caller can't hold the model.

A browser tab or a ``gradio_client`` reads its session's event stream as the run goes; Gradio queues each
update there. A client that posted a run and never reads it (``POST /gradio_api/call/generate`` and walk
away) lets those updates pile up unread; one that drops its stream stops being served. :func:`watch_client`
watches the session's queue of unread updates from a small thread: once updates have waited unread for
:data:`UNREAD_GRACE` seconds it cancels the run's token, and the run stops within a token and is saved as
``cancelled``. (A closed stream is noticed by Gradio itself, which then closes the handler.)

Reads Gradio's queue internals (``Blocks._queue.pending_messages_per_session``) defensively: if they are not
there (another Gradio version) the watch does nothing and the token caps still bound the work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from app.engine.events import CancelToken

log = logging.getLogger(__name__)

#: Seconds updates may wait unread before the run is cancelled.
UNREAD_GRACE = 5.0
#: How often the watch looks.
POLL = 0.5


def unread_updates(request: Any) -> int | None:
    """How many updates wait unread in the request's session queue; None when that can't be known."""
    try:
        starlette = request.__dict__.get("request")  # gr.Request.__getattr__ would make up attributes
        session = request.__dict__.get("session_hash")
        blocks = starlette.app.get_blocks()
        pending = blocks._queue.pending_messages_per_session.get(session)
        return None if pending is None else int(pending.qsize())
    except Exception:
        return None


@contextmanager
def watch_client(request: Any, token: CancelToken, *, grace: float | None = None) -> Iterator[None]:
    """While the block runs, cancel ``token`` once the client has left updates unread for ``grace`` seconds
    (default :data:`UNREAD_GRACE`)."""
    grace = UNREAD_GRACE if grace is None else grace
    if request is None or unread_updates(request) is None:
        yield
        return
    stop = threading.Event()

    def watch() -> None:
        unread_since: float | None = None
        while not stop.wait(POLL) and not token.cancelled:
            waiting = unread_updates(request)
            if not waiting:
                unread_since = None
                continue
            unread_since = unread_since or time.monotonic()
            if time.monotonic() - unread_since >= grace:
                log.warning("cancelling a run: its client left %d updates unread for %.0f s", waiting, grace)
                token.cancel()
                return

    thread = threading.Thread(target=watch, name="tracelab-client-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2 * POLL)
