"""The error types every layer shares: a refusal the user can act on is a :class:`UserError`; anything else is a bug.

This module sits below every layer and imports nothing from ``app`` (``tests/test_architecture.py`` checks it),
so the engine, the store, the services and both front ends can raise and catch these without an upward arrow.

Every refusal derives from :class:`UserError`: settings and inputs (:class:`InvalidInput`), paths the user named
(:class:`UnusablePath`), the store (:class:`StoreError`), and, declared next to the code that raises them, model
loading (``LoadError``), the bundled model (``BundledModelError``), reasoning formats (``FormatError``), the
inference server (``RemoteError``), permissions (``NotAllowed``), labelling (``LabelingError``) and exports
(``ExportError``). The CLI and the UI print a ``UserError``'s message as one line; any other exception is a bug:
its traceback is logged and the user is asked to report it. A broken invariant (a caller passing the wrong thing)
stays a plain ``ValueError``/``RuntimeError``/``AssertionError``, so it is reported as the bug it is.

``StoreError`` and ``NotFound`` live here so the UI and the CLI can catch a refusal of the store without importing
``app.store`` (the store raises them; ``app.store.errors`` re-exports them).
"""

from __future__ import annotations

__all__ = [
    "DatabaseBusy",
    "InvalidInput",
    "NotFound",
    "StoreError",
    "UnusablePath",
    "UserError",
    "is_user_error",
]


class UserError(Exception):
    """A refusal the user can act on: its message is one plain sentence naming the problem and the fix.

    Every refusal (loading, settings, limits, store, export, server) derives from it; the CLI and the UI print
    its message as one line, and treat anything else as a bug (a logged traceback and "please report it").
    """


class InvalidInput(UserError, ValueError):
    """A setting, flag, field or file the user gave is out of range or malformed (still a ``ValueError``)."""


class UnusablePath(UserError, OSError):
    """A path the user named (``--out``, ``--auth``, a problem file) can't be read or written (still an
    ``OSError``); the message names the path and the fix."""


class StoreError(UserError):
    """A store operation was refused or the database could not be used; the message says why and what to do."""


class NotFound(StoreError):
    """The run, sample, step or sweep asked for does not exist (never saved, or deleted)."""


class DatabaseBusy(StoreError):
    """Another writer holds the database's lock past the busy timeout; retrying later may succeed."""


def is_user_error(exc: BaseException) -> bool:
    """True for a refusal to show as one line; False for a bug (log its traceback and ask for a report)."""
    return isinstance(exc, UserError)
