"""Checks of the values callers hand the store (names, ids, choices): each refusal says what is wrong and the fix.

The database's own constraints stay the last word; these run first so a refusal reads as a sentence, not as a
constraint name.
"""

from __future__ import annotations

from app.store.errors import NotFound, StoreError
from app.store.models import ANNOTATOR_NAME_MAX

#: Ids are SQL BIGINTs; a larger number can't name a row.
ID_MAX = 2**63 - 1


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    """``StoreError`` unless ``value`` is one of ``allowed`` (a kind, a status, a step source...)."""
    if value not in allowed:
        raise StoreError(f"{name}={value!r} is not one of {', '.join(allowed)}")


def check_id(name: str, value: int) -> int:
    """``value`` if it can be a row id, else a ``NotFound`` naming it (ids start at 1 and fit in 64 bits)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= ID_MAX:
        raise NotFound(f"{name} {value} does not exist: ids are whole numbers from 1 up")
    return value


def check_user(name: str | None) -> str | None:
    """The login recorded as a run's creator or deleter (None: nobody logged in)."""
    if name is not None and len(name) > ANNOTATOR_NAME_MAX:
        raise StoreError(f"user name is {len(name)} characters; use at most {ANNOTATOR_NAME_MAX}")
    return name


def check_annotator_name(name: str) -> str:
    """Return the name stripped, or raise ``StoreError`` saying what is wrong with it."""
    cleaned = (name or "").strip()
    if not cleaned:
        raise StoreError("annotator name is empty; type your name (e.g. 'alice') before labelling")
    if len(cleaned) > ANNOTATOR_NAME_MAX:
        raise StoreError(
            f"annotator name {cleaned[:20]!r}... is {len(cleaned)} characters; use at most {ANNOTATOR_NAME_MAX}"
        )
    if any(not ch.isprintable() for ch in cleaned):
        raise StoreError(f"annotator name {cleaned!r} contains control characters; use letters, digits and spaces")
    return cleaned
