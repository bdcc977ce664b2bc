"""Keyset paging for the export queries: which samples a page holds, and reading every page into one list.

An export reads its records page by page so that nothing holds the whole selection: each export query takes
``after`` (the last id of the previous page; 0 to start) and ``limit`` (the most samples, or preference rows,
in one page) and answers only the ids after ``after``, in id order. A page is chosen by one query over the
samples' primary key (:func:`sample_page`, an ``EXISTS`` test per sample that walks the indexes of ``steps``,
``step_labels``, ``sample_verdicts`` and ``auto_step_labels``), so reading page n costs the same as page 1,
whatever the store's size. Every sample a page names yields at least one record, so the caller continues
after the last record's id and stops at the first empty page. With ``limit=None`` a query reads every page and
returns them as one list (:func:`every_page`; for callers that want everything at once, like Agreement).

What each query's ``EXISTS`` test asks is exactly its own filter, "current" included: :func:`is_current` says
that no newer row of the same (step or sample, annotator or source) exists, which is what the ``max(id)``
views of ``fragments.py`` compute for the whole table at once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, exists, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from app.store.models import Run, Sample

#: Samples (or preference rows) per page when a query is asked for everything (``limit=None``).
PAGE_SIZE = 256

T = TypeVar("T")


def sample_page(
    session: Session, has: ColumnElement[bool], *, after: int, limit: int, model: str | None = None
) -> list[int]:
    """The ids of the first ``limit`` samples after ``after`` (of runs by ``model``, if given) for which ``has``
    holds (an ``EXISTS`` correlated to ``Sample``), in id order."""
    where = [Sample.id > after, has]
    if model is not None:  # tested per sample, so the page walks the primary key from ``after`` on
        where.append(select(Run.id).where(Run.id == Sample.run_id, Run.model == model).exists())
    return list(session.scalars(select(Sample.id).where(*where).order_by(Sample.id).limit(limit)))


def is_current(
    model: Any, row_id: InstrumentedAttribute[int], *same: InstrumentedAttribute[Any]
) -> ColumnElement[bool]:
    """No newer row of ``model`` (a table with append-only history) shares the ``same`` columns with this one:
    the row is the current one of its group (the newest id wins, as in ``fragments.py``)."""
    newer = aliased(model)
    return ~exists().where(and_(*(getattr(newer, col.key) == col for col in same)), getattr(newer, row_id.key) > row_id)


def every_page(fetch: Callable[[int, int], list[T]], key: Callable[[T], int], after: int = 0) -> list[T]:
    """Every record ``fetch(after, limit)`` pages out, in order, continuing after ``key`` of each page's last."""
    found: list[T] = []
    while page := fetch(after, PAGE_SIZE):
        found.extend(page)
        after = key(page[-1])
    return found


def paged(key: Callable[[Any], int]) -> Callable[[Callable[..., list[T]]], Callable[..., list[T]]]:
    """Make a paged export query (keyword arguments only, ``after``/``limit`` among them) answer ``limit=None``
    with every page, in order (:func:`every_page`, continuing after ``key`` of each page's last record)."""

    def wrap(query: Callable[..., list[T]]) -> Callable[..., list[T]]:
        @functools.wraps(query)
        def each_page(self: Any, *, after: int = 0, limit: int | None = None, **filters: Any) -> list[T]:
            if limit is not None:
                return query(self, after=after, limit=limit, **filters)
            return every_page(lambda start, n: query(self, after=start, limit=n, **filters), key, after)

        return each_page

    return wrap
