"""History: the saved runs a person browses -- list and filter them, open one, delete one -- and the names the
filter menus offer (models, annotators).

The History tab, the Annotate and Export tabs' dropdowns and the API are adapters over these functions; none
of them reaches into the store. Returns the store's plain records (:class:`RunSummary`, :class:`StoredRun`);
the JSON of a run is :func:`app.services.runs.run_json`.
"""

from __future__ import annotations

from typing import Protocol

from app.store.records import RunSummary, StoredRun

#: The filter value meaning "no filter" in the History menus.
ANY = "any"
#: Most runs one History page lists.
PAGE = 200

__all__ = [
    "ANY", "PAGE", "RunSummary", "StoredRun", "annotator_names", "delete_run", "get_run", "list_runs", "model_names"
]  # fmt: skip


class HistoryStore(Protocol):
    """The store queries History needs (``app.store.Store`` has them)."""

    def list_runs(
        self, *, search: str | None = None, model: str | None = None, stop_reason: str | None = None, limit: int = 100
    ) -> list[RunSummary]: ...

    def get_run(self, run_id: int) -> StoredRun: ...

    def delete_run(self, run_id: int) -> None: ...

    def list_models(self) -> list[str]: ...

    def list_annotators(self) -> list[str]: ...


def _filter(value: str | None) -> str | None:
    return None if value in (None, "", ANY) else value


def list_runs(
    store: HistoryStore, search: str | None = None, model: str | None = None, stop_reason: str | None = None
) -> list[RunSummary]:
    """Past runs, newest first (at most :data:`PAGE`); ``search`` matches prompts and answers, ``any`` = no filter."""
    return store.list_runs(
        search=(search or "").strip() or None, model=_filter(model), stop_reason=_filter(stop_reason), limit=PAGE
    )


def get_run(store: HistoryStore, run_id: int) -> StoredRun:
    """One run with its samples and their steps; ``NotFound`` says it does not exist."""
    return store.get_run(int(run_id))


def delete_run(store: HistoryStore, run_id: int) -> None:
    """Delete a run and everything under it (labels included); ``NotFound`` if there is no such run."""
    store.delete_run(int(run_id))


def model_names(store: HistoryStore, loaded: str | None = None) -> list[str]:
    """Every model with saved runs (plus ``loaded``, the one being served, if given), alphabetically."""
    return sorted({*store.list_models(), *([loaded] if loaded else [])})


def annotator_names(store: HistoryStore) -> list[str]:
    """Every annotator who has labelled, ranked or judged anything, alphabetically."""
    return list(store.list_annotators())
