"""Errors the store raises. Callers catch ``StoreError``; every message says what failed and how to fix it.

This module owns nothing else: no SQLAlchemy import, so the UI can catch these without knowing the ORM.
"""

from __future__ import annotations


class StoreError(Exception):
    """A store operation was refused or the database could not be used; the message says why and what to do."""


class NotFound(StoreError):
    """The run, sample, step or sweep asked for does not exist (never saved, or deleted)."""


class DatabaseBusy(StoreError):
    """Another writer holds the database's lock past the busy timeout; retrying later may succeed."""
