"""Who may cancel what: ``POST /gradio_api/cancel`` reaches only the caller's own waiting or running event.

Gradio's ``/cancel`` route trusts its body. Given any event id it closes that event's generator, and when the
``session_hash``/``fn_index`` it was given are not the event's own, the task that streams the event is not
cancelled with it: that task asks the closed generator for its next update, finds it reset, and **starts the
function again from scratch** with the same inputs (a duplicate run that holds the model to its full budget).
It also answers ``{"success": true}`` to an event id that never existed.

:class:`OwnCancelOnly` (ASGI middleware, installed with the ``/cancel`` login wall of :mod:`app.ui.security`)
checks a cancel before Gradio sees it: the event must be waiting or running, the body's ``session_hash`` and
``fn_index`` must be that event's own (so Gradio cancels the very task that streams it, and nothing runs
again), and with logins on the caller must be the user who started it. Anything else is answered in one
sentence (404 for an unknown or foreign event, so an event id says nothing about other people's runs; 422
for a body that is not a cancel) and Gradio's route never runs. A running model event the check lets through
is stopped through its own cancel token (:meth:`app.ui.running.CancelRegistry.cancel_session`): the run stops
at the next token, is saved ``cancelled`` and its result streams last; only a waiting event, or one that runs
no model, goes on to Gradio's route.

Reads Gradio's queue (``Blocks._queue.event_ids_to_events``) defensively: a queue it can't read refuses the
cancel rather than letting it through unchecked.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.ui.bodies import replaying
from app.ui.running import CANCELS

__all__ = ["NOT_YOURS", "OwnCancelOnly", "own_event"]

#: The answer to a cancel of an event that is not the caller's, finished, or never existed.
NOT_YOURS = (
    "No run of yours with that event id is waiting or running: it has finished already, or the id (or its "
    "session_hash and fn_index) is not one of your own runs."
)
BAD_BODY = 'A cancel takes a JSON object {"session_hash": "...", "fn_index": <int>, "event_id": "..."} of your own run.'
#: The most body a cancel may have (its three fields are short).
MAX_BODY = 4096


def _caller(gradio_app: Any, scope: Scope) -> str | None:
    """The logged-in user of this request (Gradio's login cookie), or None."""
    cookies = HTTPConnection(scope).cookies
    cookie_id = getattr(gradio_app, "cookie_id", "")
    tokens = getattr(gradio_app, "tokens", {}) or {}
    for name in ("access-token", "access-token-unsecure"):
        user = tokens.get(cookies.get(f"{name}-{cookie_id}"))
        if user is not None:
            return user
    return None


def own_event(gradio_app: Any, scope: Scope, raw: bytes) -> Any:
    """The caller's own waiting or running Gradio event this cancel names, or the refusal as (HTTP status,
    sentence)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return 422, BAD_BODY
    if not isinstance(body, dict):
        return 422, BAD_BODY
    session, fn_index, event_id = body.get("session_hash"), body.get("fn_index"), body.get("event_id")
    if not (isinstance(session, str) and isinstance(event_id, str) and type(fn_index) is int):
        return 422, BAD_BODY
    try:
        event = gradio_app.get_blocks()._queue.event_ids_to_events.get(event_id)
    except Exception:  # another Gradio: refuse rather than pass an unchecked cancel on
        return 404, NOT_YOURS
    if event is None or event.session_hash != session or getattr(event.fn, "_id", None) != fn_index:
        return 404, NOT_YOURS
    if getattr(gradio_app, "auth", None) and event.username != _caller(gradio_app, scope):
        return 404, NOT_YOURS
    return event


def _waiting(gradio_app: Any, event: Any) -> bool:
    """Whether ``event`` still waits in its queue (nothing of it runs yet)."""
    try:
        return event in gradio_app.get_blocks()._queue.event_queue_per_concurrency_id[event.concurrency_id].queue
    except Exception:
        return False


class OwnCancelOnly:
    """ASGI middleware: a ``POST …/gradio_api/cancel`` goes on to Gradio only for the caller's own live event."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "").rstrip("/") if scope["type"] == "http" else ""
        if not path.endswith("/gradio_api/cancel") or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        raw, too_long = await _read_body(receive)
        gradio_app = scope.get("app")
        event = (422, BAD_BODY) if too_long else own_event(gradio_app, scope, raw)
        if isinstance(event, tuple):
            status, sentence = event
            await JSONResponse({"success": False, "detail": sentence}, status_code=status)(scope, receive, send)
            return
        if not _waiting(gradio_app, event) and CANCELS.cancel_session(event.session_hash):
            # A running model event ends itself: it stops at the next token, saves the run as cancelled and
            # streams that result last. Gradio's route would close its generator mid-step instead (a close
            # that can fail while the step runs, leaving the run unsaved and the event open).
            await JSONResponse({"success": True})(scope, receive, send)
            return
        await self.app(scope, replaying(raw, False, receive), send)


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The request's body, and whether it was longer than :data:`MAX_BODY` (then only a prefix is kept)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= MAX_BODY:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), size > MAX_BODY
