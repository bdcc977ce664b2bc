"""Who can reach the app and how hard they can push: the exposure warning, login backoff, and a login wall
in front of Gradio's ``/cancel`` route.

- :func:`exposure_warning`: serving on a non-loopback interface without ``--auth`` lets anyone who reaches the
  port run the model and read, label and delete runs. ``serve`` logs it and the page shows it as a banner.
- :class:`LoginGuard`: the ``auth`` callable Gradio calls on every login. Failures are counted per user name
  *and* client address (:func:`client_key`): after :data:`FREE_FAILURES` wrong passwords for one name from one
  address, that name is locked *from that address* for :data:`FIRST_LOCK_SECONDS`, doubling with each further
  failure up to :data:`MAX_LOCK_SECONDS`. While locked even the right password is refused, with a message that
  says it is a lockout and how long it lasts (``LoginLocked``: HTTP 400, ``Retry-After``). Someone failing for
  bob from their own address therefore never locks bob out of his; other names are never affected.
- The client address is the connection's peer. Forwarding headers (``X-Forwarded-For``) are not believed
  unless the operator names the proxy in ``FORWARDED_ALLOW_IPS`` (uvicorn's setting; :func:`distrust_forwarding`
  turns uvicorn's default of trusting a loopback peer off), so nobody can pose as bob's address by a header.
- :func:`cancel_guard`: Gradio answers ``POST /gradio_api/cancel`` to anybody. With ``--auth`` the guard
  refuses it (401) without a login cookie. Cancelling needs the run's event id or session hash, random values
  only the page that started the run knows, so another user can't stop someone else's run (tests pin both).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.settings import AppSettings

log = logging.getLogger(__name__)

#: Wrong passwords one user name may give from one address before it is locked there.
FREE_FAILURES = 5
#: The first lock, in seconds; each further failure doubles it.
FIRST_LOCK_SECONDS = 2.0
MAX_LOCK_SECONDS = 300.0
#: (name, address) pairs tracked at once (a flood of made-up names can't grow memory without bound).
TRACKED_NAMES = 10_000
#: uvicorn's list of proxies whose ``X-Forwarded-For`` it believes (its default trusts 127.0.0.1 and ::1).
FORWARDED_ALLOW_IPS = "FORWARDED_ALLOW_IPS"

#: The client address of the login being checked, set by :class:`_ClientAddress` for each HTTP request.
_CLIENT: ContextVar[str] = ContextVar("tracelab_login_client", default="unknown")


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(settings: AppSettings) -> str | None:
    """A warning when the app listens beyond this machine with no logins; None when it is safe."""
    if settings.auth or is_loopback(settings.host):
        return None
    return (
        f"tracelab listens on {settings.host}:{settings.port} without --auth: anyone who can reach this port can "
        "run the model and read, label and delete every run. Start it with --auth user:password (or "
        "TRACELAB_AUTH), or with --host 127.0.0.1 to keep it on this machine."
    )


def client_key(host: str | None) -> str:
    """The address failures are counted against: the peer's IP; an IPv6 peer by its /64 network (one machine
    can pick any address in its /64, so counting single addresses would give it endless free tries)."""
    if not host:
        return "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def wait_text(seconds: float) -> str:
    """``seconds`` as a person reads a wait: "42 s", "4 min 10 s", "5 min" (rounded up to whole seconds)."""
    minutes, secs = divmod(max(1, math.ceil(seconds)), 60)
    if not minutes:
        return f"{secs} s"
    return f"{minutes} min {secs} s" if secs else f"{minutes} min"


def lock_rule() -> str:
    """The lockout rule in one sentence (the login page shows it; the README states the same numbers)."""
    return (
        f"After {FREE_FAILURES} wrong passwords for a name from one address, that name is locked from that "
        f"address for {FIRST_LOCK_SECONDS:g} s, doubling with each further wrong password up to "
        f"{wait_text(MAX_LOCK_SECONDS)}; other addresses and other names are not affected."
    )


class LoginLocked(HTTPException):
    """A login refused because its name is locked from this address: Gradio's login route answers it as is."""

    def __init__(self, username: str, seconds: float) -> None:
        wait = wait_text(seconds)
        super().__init__(
            status_code=400,  # Gradio's login page shows its refusal text for a 400 only
            detail=f"Too many failed logins for {username[:64]} from this address: try again in {wait}.",
            headers={"Retry-After": str(max(1, math.ceil(seconds)))},
        )


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0


class LoginGuard:
    """Gradio's ``auth`` callable: checks the password and backs off per user name and client address (see
    the module docstring). The address is the request's (the middleware :func:`cancel_guard` installs puts it
    there); a call outside a request counts against ``"unknown"``, or against ``address`` when given."""

    def __init__(
        self,
        pairs: list[tuple[str, str]],
        *,
        free_failures: int = FREE_FAILURES,
        first_lock: float = FIRST_LOCK_SECONDS,
        max_lock: float = MAX_LOCK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._passwords = dict(pairs)
        self.free_failures = free_failures
        self.first_lock = first_lock
        self.max_lock = max_lock
        self.clock = clock
        self._lock = threading.Lock()
        self._failures: OrderedDict[tuple[str, str], _Failures] = OrderedDict()

    def locked_for(self, username: str, address: str | None = None) -> float:
        """Seconds until ``username`` may try again from ``address`` (the current request's when None; 0 when
        it may now)."""
        key = (username, address if address is not None else _CLIENT.get())
        with self._lock:
            state = self._failures.get(key)
            return max(0.0, state.locked_until - self.clock()) if state else 0.0

    def __call__(self, username: str, password: str, address: str | None = None) -> bool:
        """True for the right password; False for a wrong one; :class:`LoginLocked` while the name is locked
        from this address (also for the wrong password that locks it)."""
        username = (username or "").strip()
        address = address if address is not None else _CLIENT.get()
        wait = self.locked_for(username, address)
        if wait > 0:
            log.warning("login refused: %r is locked from %s for %.0f s", username[:64], address, wait)
            raise LoginLocked(username, wait)
        expected = self._passwords.get(username)
        ok = expected is not None and hmac.compare_digest(
            password.encode("utf-8", "replace"), expected.encode("utf-8", "replace")
        )
        if ok:
            with self._lock:
                self._failures.pop((username, address), None)
            return True
        wait = self._fail(username, address)
        if wait > 0:
            log.warning(
                "login: %r locked from %s for %.0f s after repeated wrong passwords", username[:64], address, wait
            )
            raise LoginLocked(username, wait)
        return False

    def _fail(self, username: str, address: str) -> float:
        """Count a wrong password; return the lock it starts (0 while failures are still free)."""
        with self._lock:
            state = self._failures.pop((username, address), None) or _Failures()
            state.count += 1
            over = state.count - self.free_failures
            wait = min(self.first_lock * 2 ** min(over, 32), self.max_lock) if over >= 0 else 0.0  # no overflow
            state.locked_until = self.clock() + wait
            self._failures[(username, address)] = state  # most recent last
            while len(self._failures) > TRACKED_NAMES:
                self._failures.popitem(last=False)
        return wait


def distrust_forwarding() -> None:
    """Make uvicorn ignore ``X-Forwarded-For`` unless the operator set ``FORWARDED_ALLOW_IPS`` to their
    proxy's address: by default it believes a loopback peer's header, so any local process could pose as
    another client's address. Call before ``launch`` (uvicorn reads the variable when the server starts)."""
    os.environ.setdefault(FORWARDED_ALLOW_IPS, "")


class _ClientAddress:
    """ASGI middleware: puts the request's client address (:func:`client_key`) where :class:`LoginGuard` reads it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        token = _CLIENT.set(client_key(client[0] if client else None))
        try:
            await self.app(scope, receive, send)
        finally:
            _CLIENT.reset(token)


class _CancelGuard:
    """ASGI middleware: with logins on, ``POST …/gradio_api/cancel`` needs a valid login cookie."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path", "").rstrip("/").endswith("/gradio_api/cancel"):
            gradio_app: Any = scope.get("app")
            if getattr(gradio_app, "auth", None) and not _logged_in(gradio_app, scope):
                response = JSONResponse({"detail": "Not authenticated: log in first."}, status_code=401)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _logged_in(gradio_app: Any, scope: Scope) -> bool:
    from starlette.requests import HTTPConnection

    cookies = HTTPConnection(scope).cookies
    cookie_id = getattr(gradio_app, "cookie_id", "")
    tokens = getattr(gradio_app, "tokens", {}) or {}
    return any(cookies.get(f"{name}-{cookie_id}") in tokens for name in ("access-token", "access-token-unsecure"))


def cancel_guard() -> dict[str, Any]:
    """``app_kwargs`` for ``Blocks.launch``: records the client address the login back-off counts against,
    installs the ``/cancel`` login wall, then the check that a cancel
    reaches only the caller's own live event (:class:`app.ui.cancelling.OwnCancelOnly`); then, a body that
    can't be an API call is refused in one sentence (:class:`app.ui.bodies.BodyShape`)."""
    from app.ui.bodies import BodyShape
    from app.ui.cancelling import OwnCancelOnly

    return {
        "middleware": [
            Middleware(_ClientAddress),
            Middleware(_CancelGuard),
            Middleware(OwnCancelOnly),
            Middleware(BodyShape),
        ]
    }
