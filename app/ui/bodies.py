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


def body_refusal(path: str, raw: bytes, gradio_app: Any = None) -> str | None:
    """Why the JSON body ``raw`` of a call to ``path`` can't be a call (one sentence), or None. With the Gradio
    app, a ``data`` list shorter than the event's inputs is refused too (Gradio itself answers that with a
    traceback in the server log)."""
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
    if _web_address(body.get("data")):  # Gradio would download it into its cache: the app fetches nothing remote
        return "A file input takes an uploaded file, not a web address: upload the file itself."
    wanted = _inputs_of(gradio_app, path, body) if isinstance(body.get("data"), list) else None
    if wanted is not None and len(body["data"]) < wanted:
        return f'"data" holds {len(body["data"])} values; this call takes {wanted}, one per input, in order.'
    return None


def _web_address(value: Any) -> bool:
    """Whether ``value`` holds a file reference (``{"path"|"url": ...}``) to an http(s) address, at any depth."""
    if isinstance(value, dict):
        if any(str(value.get(key) or "").lower().startswith(("http://", "https://")) for key in ("path", "url")):
            return True
        return any(_web_address(v) for v in value.values())
    return isinstance(value, list) and any(_web_address(v) for v in value)


def _sent(fn: Any) -> int:
    """The inputs a caller sends for event ``fn``: all but session state, which Gradio fills in itself."""
    return sum(not getattr(block, "stateful", False) for block in fn.inputs)


def _inputs_of(gradio_app: Any, path: str, body: dict[str, Any]) -> int | None:
    """How many inputs the event ``path``/``body`` calls takes (None when it can't be told: Gradio decides)."""
    try:
        fns = gradio_app.get_blocks().fns
        if isinstance(body.get("fn_index"), int):
            return _sent(fns[body["fn_index"]])
        if "/gradio_api/call/" in path:
            name = path.split("/gradio_api/call/", 1)[1].strip("/")
            return next((_sent(fn) for fn in fns.values() if fn.api_name == name), None)
    except Exception:  # noqa: BLE001 - an app or event this can't read: Gradio checks it itself
        return None
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
        problem = body_refusal(path, raw, scope.get("app")) if not more else None
        if problem is not None:
            await JSONResponse({"error": problem, "detail": problem}, status_code=422)(scope, receive, send)
            return
        await self.app(scope, replaying(raw, more, receive), send)
