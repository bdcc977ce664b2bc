"""The shape of an API call's body, checked before FastAPI reads it: a malformed one is answered in one sentence.

FastAPI answers a body that doesn't fit a route's model with a 422 that echoes the input; when that input holds
``NaN`` or ``Infinity`` (which Python's JSON reader takes, and JSON itself has no words for), rendering the 422
fails and the caller gets "Internal Server Error" while the log gets a traceback. :class:`BodyShape` (ASGI
middleware) reads the JSON body of a ``POST …/gradio_api/…`` call first: a body that is not JSON, not an object,
whose ``data`` is not a list (a dict on ``/call/v2/…``), or with ``NaN``/``Infinity`` outside ``data`` is refused
with 422 and one sentence; anything else goes on untouched. Values inside ``data`` are each input's own business
(:mod:`app.ui.input_guard`).
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyShape", "body_refusal", "replaying"]

#: The largest body read here (bigger ones go on to Gradio, which has its own limits).
MAX_CHECKED = 8 * 1024 * 1024
SHAPE = 'An API call takes a JSON object {"data": [one value per input, in order]}'


def body_refusal(path: str, raw: bytes) -> str | None:
    """Why the JSON body ``raw`` of a call to ``path`` can't be a call (one sentence), or None."""
    try:
        body: Any = json.loads(raw)
    except ValueError:
        return f"The body is not JSON. {SHAPE}."
    if not isinstance(body, dict):
        return f"The body is {type(body).__name__ if body is not None else 'null'}, not an object. {SHAPE}."
    if "data" in body:
        wanted = dict if "/call/v2/" in path else list
        if not isinstance(body["data"], wanted):
            kind = "an object {name: value}" if wanted is dict else "a list"
            return f'"data" must be {kind}. {SHAPE}.'
    for key, value in body.items():
        if key != "data" and isinstance(value, float) and not math.isfinite(value):
            return f'"{key}" is {value}, which is no value JSON knows. {SHAPE}.'
    return None


def replaying(raw: bytes, more: bool, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body a middleware already read (``raw``; ``more``: the request goes
    on), then the rest of the request as it comes."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": raw, "more_body": more}

    return again


class BodyShape:
    """ASGI middleware: a ``POST …/gradio_api/…`` whose JSON body can't be a call gets 422 and one sentence."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        headers = dict(scope.get("headers") or [])
        if (
            scope.get("method") != "POST"
            or "/gradio_api/" not in path
            or b"json" not in headers.get(b"content-type", b"")
            or path.rstrip("/").endswith("/upload")
        ):
            await self.app(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more and size <= MAX_CHECKED:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        problem = body_refusal(path, raw) if not more else None
        if problem is not None:
            await JSONResponse({"error": problem, "detail": problem}, status_code=422)(scope, receive, send)
            return
        await self.app(scope, replaying(raw, more, receive), send)
