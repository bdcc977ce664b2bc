"""The error types every layer shares, and which exceptions are the user's to fix (one line) rather than bugs.

``StoreError`` and ``NotFound`` live here, below every layer, so the UI and the CLI can catch a refusal of the
store without importing ``app.store`` (the store raises them; ``app.store.errors`` re-exports them).
"""

from __future__ import annotations


class UserError(Exception):
    """A refusal the user can act on: its message is one plain sentence naming the problem and the fix.

    Every refusal (loading, settings, limits, store, export, server) derives from it; the CLI and the UI print
    its message as one line, and treat anything else as a bug (a logged traceback and "please report it").
    """


class InvalidInput(UserError, ValueError):
    """A setting, flag, field or file the user gave is out of range or malformed (still a ``ValueError``)."""


class StoreError(UserError):
    """A store operation was refused or the database could not be used; the message says why and what to do."""


class NotFound(StoreError):
    """The run, sample, step or sweep asked for does not exist (never saved, or deleted)."""


class DatabaseBusy(StoreError):
    """Another writer holds the database's lock past the busy timeout; retrying later may succeed."""


def user_error_types() -> tuple[type[BaseException], ...]:
    from app.engine.bundled import BundledModelError
    from app.engine.loading import LoadError

    # ValueError covers bad settings and ExportError (a subclass); OSError an unwritable --out or
    # --data-dir or a full disk, whose message names the path.
    return (ValueError, OSError, LoadError, BundledModelError, StoreError)


def is_user_error(exc: BaseException) -> bool:
    return isinstance(exc, user_error_types())
