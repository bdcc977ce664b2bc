"""Who can reach the app and how hard they can push: the exposure warning, login backoff, and a login wall
in front of Gradio's ``/cancel`` route.

- :func:`exposure_warning`: serving on a non-loopback interface without ``--auth`` lets anyone who reaches the
  port run the model and read, label and delete runs. ``serve`` logs it and the page shows it as a banner.
- :class:`LoginGuard`: the ``auth`` callable Gradio calls on every login. After :data:`FREE_FAILURES` wrong
  passwords for one user name, that name is locked for a delay that doubles with each further failure (up to
  :data:`MAX_LOCK_SECONDS`); while locked even the right password is refused. Other names are unaffected.
- :func:`cancel_guard`: Gradio answers ``POST /gradio_api/cancel`` to anybody. With ``--auth`` the guard
  refuses it (401) without a login cookie. Cancelling needs the run's event id or session hash, random values
  only the page that started the run knows, so another user can't stop someone else's run (tests pin both).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.settings import AppSettings

log = logging.getLogger(__name__)

#: Wrong passwords a user name may give before it is locked.
FREE_FAILURES = 5
#: The first lock, in seconds; each further failure doubles it.
FIRST_LOCK_SECONDS = 2.0
MAX_LOCK_SECONDS = 300.0
#: User names tracked at once (a flood of made-up names can't grow memory without bound).
TRACKED_NAMES = 10_000


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


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0


class LoginGuard:
    """Gradio's ``auth`` callable: checks the password and backs off per user name (see the module docstring)."""

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
        self._failures: OrderedDict[str, _Failures] = OrderedDict()

    def locked_for(self, username: str) -> float:
        """Seconds until ``username`` may try again (0 when it may now)."""
        with self._lock:
            state = self._failures.get(username)
            return max(0.0, state.locked_until - self.clock()) if state else 0.0

    def __call__(self, username: str, password: str) -> bool:
        username = (username or "").strip()
        if self.locked_for(username) > 0:
            log.warning("login refused: %r is locked after repeated wrong passwords", username[:64])
            return False
        expected = self._passwords.get(username)
        ok = expected is not None and hmac.compare_digest(
            password.encode("utf-8", "replace"), expected.encode("utf-8", "replace")
        )
        with self._lock:
            if ok:
                self._failures.pop(username, None)
                return True
            state = self._failures.pop(username, None) or _Failures()
            state.count += 1
            over = state.count - self.free_failures
            if over >= 0:
                state.locked_until = self.clock() + min(self.first_lock * 2**over, self.max_lock)
            self._failures[username] = state  # most recent last
            while len(self._failures) > TRACKED_NAMES:
                self._failures.popitem(last=False)
        return False


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
    """``app_kwargs`` for ``Blocks.launch``: installs the ``/cancel`` login wall, then the check that a cancel
    reaches only the caller's own live event (:class:`app.ui.cancelling.OwnCancelOnly`); then, a body that
    can't be an API call is refused in one sentence (:class:`app.ui.bodies.BodyShape`)."""
    from app.ui.bodies import BodyShape
    from app.ui.cancelling import OwnCancelOnly

    return {"middleware": [Middleware(_CancelGuard), Middleware(OwnCancelOnly), Middleware(BodyShape)]}
