"""Rows several aggregates point at, found or created inside the caller's write session: annotators (labels,
verdicts, preferences) and prompts (runs; preferences compare samples of one prompt).

Both are unique by value (an annotator by name, a prompt by the hash of its text), so a concurrent writer may
add the same one first; the nested transaction then rolls back and the existing row is used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.store.checks import check_annotator_name
from app.store.models import Annotator, Prompt


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _get_or_create(session: Session, find: Select[int], make: Callable[[], Annotator | Prompt]) -> int:
    """The id ``find`` selects, or that of the row ``make`` builds when there is none yet."""
    found = session.scalar(find)
    if found is not None:
        return found
    try:
        with session.begin_nested():  # a concurrent writer may add the same row first (Postgres)
            row = make()
            session.add(row)
        return row.id
    except IntegrityError:
        return session.scalars(find).one()


def annotator_id(session: Session, name: str) -> int:
    """The annotator's id, registering the name (checked first) if it is new."""
    name = check_annotator_name(name)
    return _get_or_create(session, select(Annotator.id).where(Annotator.name == name), lambda: Annotator(name=name))


def prompt_id(session: Session, text: str) -> int:
    """The prompt row's id for ``text`` (the same text is stored once)."""
    digest = text_hash(text)
    return _get_or_create(
        session, select(Prompt.id).where(Prompt.text_hash == digest), lambda: Prompt(text=text, text_hash=digest)
    )


def find_annotator_id(session: Session, name: str) -> int | None:
    """The id of an existing annotator, or None (reads never create annotators)."""
    return session.scalar(select(Annotator.id).where(Annotator.name == name.strip()))
