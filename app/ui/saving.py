"""How a run's save shows on the page: "Saving…" while a busy database is retried in the background, then
"Saved as run #N", or a warning that stays under a trace the database never took.

The retrying itself is :mod:`app.services.recording`; this module only keeps the pending tickets (by a random
key the page holds, so a page can only follow its own save) and words the outcome. Any tab may use it.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator

from app.services.recording import SAVE_RETRY_SECONDS, SaveTicket
from app.ui.render import safe_text

#: Seconds a handler waits for a run's save before it shows "Saving…" and follows it in the background.
SAVE_WAIT = 2.0
SAVING = "Saving… the database is busy; retrying in the background"


def unsaved_warning(reason: str) -> str:
    """The warning that stays under a trace the database did not take (markdown, escaped)."""
    return (
        f"⚠️ **Not saved.** {safe_text(reason)} This trace exists only on this page: copy it before you "
        "close or reload the tab."
    )


class PendingSaves:
    """Saves still retrying in the background, by a random key handed to the page that started them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tickets: dict[str, SaveTicket] = {}

    def add(self, ticket: SaveTicket) -> str:
        key = secrets.token_urlsafe(12)
        with self._lock:
            self._tickets[key] = ticket
        return key

    def pop(self, key: object) -> SaveTicket | None:
        if not isinstance(key, str):
            return None
        with self._lock:
            return self._tickets.pop(key, None)


PENDING = PendingSaves()


def follow(ticket: SaveTicket, every: float = 2.0) -> Iterator[str | None]:
    """Yield None every ``every`` seconds while the save retries (so a handler can keep "Saving…" up and notice a
    closed tab), then the outcome line once: "Saved as run #N" or "⚠️ Not saved: …"."""
    deadline = time.monotonic() + 3 * SAVE_RETRY_SECONDS
    while not ticket.wait(every) and time.monotonic() < deadline:
        yield None
    if ticket.state == "saved":
        yield f"Saved as run #{ticket.run_id} (after the database was busy)"
    else:
        yield f"⚠️ Not saved: {safe_text(ticket.error or 'the database stayed busy')}"
