"""Which exceptions are the user's to fix (shown as one line) rather than bugs (shown as a traceback)."""

from __future__ import annotations


def user_error_types() -> tuple[type[BaseException], ...]:
    from app.engine.bundled import BundledModelError
    from app.engine.loading import LoadError
    from app.store.errors import StoreError

    # OSError: an unwritable --out or --data-dir, a full disk -- the message names the path.
    types: list[type[BaseException]] = [ValueError, OSError, LoadError, BundledModelError, StoreError]
    try:
        from app.export import ExportError

        types.append(ExportError)
    except ImportError:  # pragma: no cover - export layer optional while developing
        pass
    return tuple(types)


def is_user_error(exc: BaseException) -> bool:
    return isinstance(exc, user_error_types())
