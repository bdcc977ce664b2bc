"""Which exceptions are the user's to fix (shown as one line) rather than bugs (shown as a traceback)."""

from __future__ import annotations


def user_error_types() -> tuple[type[BaseException], ...]:
    from app.engine.bundled import BundledModelError
    from app.engine.loading import LoadError
    from app.store.errors import StoreError

    # ValueError covers bad settings and ExportError (a subclass); OSError an unwritable --out or
    # --data-dir or a full disk, whose message names the path.
    return (ValueError, OSError, LoadError, BundledModelError, StoreError)


def is_user_error(exc: BaseException) -> bool:
    return isinstance(exc, user_error_types())
