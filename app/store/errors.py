"""Errors the store raises. Callers catch ``StoreError``; every message says what failed and how to fix it.

The classes are defined in ``app.errors`` (below every layer), so the UI can catch them without importing
``app.store``; this module re-exports them for the store's own modules.
"""

from __future__ import annotations

from app.errors import NotFound, StoreError

__all__ = ["NotFound", "StoreError"]
