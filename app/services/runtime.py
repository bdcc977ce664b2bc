"""The runtime: the heavy objects a server or CLI command shares -- loaded model, engine, store.

Built once per process from :class:`~app.settings.AppSettings` and passed to every service
function; nothing here is an import-time global, so tests build as many as they like.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from app.engine.generation import Engine
from app.engine.loading import LoadedModel, load_model
from app.errors import StoreError
from app.settings import AppSettings
from app.store.db import open_store
from app.store.repository import Store

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What every service needs: the engine over the loaded model, and the store."""

    settings: AppSettings
    loaded: LoadedModel
    engine: Engine
    #: The database; None only for a command that saves nothing (``generate --no-save``), which never reads it.
    store: Store | None

    @classmethod
    def start(cls, settings: AppSettings, *, with_store: bool = True) -> Runtime:
        # The store first: a bad --db fails fast, before a slow model load. Without it (generate --no-save)
        # nothing touches the database at all.
        store = open_database(settings) if with_store else None
        if store is not None:
            store.check_writable()  # refuse a read-only database now, not after a run has nowhere to go
        loaded = load_model(
            settings.model,
            quantize=settings.quantize,
            dtype=settings.dtype,
            format_name=settings.format or None,
            cache_dir=settings.cache_path,
        )
        log.info(
            "Loaded %s (%s) on %s in %s in %.1f s",
            loaded.name,
            loaded.format.name,
            loaded.device,
            loaded.precision,
            loaded.load_seconds,
        )
        return cls(settings=settings, loaded=loaded, engine=Engine(loaded), store=store)

    @property
    def db(self) -> Store:
        """The store, for the services that read or write it; a clear ``StoreError`` if this runtime has none."""
        if self.store is None:
            raise StoreError("this command runs without a database (--no-save); drop --no-save to read or save runs")
        return self.store

    def header(self) -> dict[str, Any]:
        """What the UI header and ``/info`` show about the loaded model."""
        info = self.loaded.describe()
        info["small_demo"] = self.loaded.is_small_demo
        info["trained_to_think"] = self.loaded.format.trained_to_think
        info["hybrid"] = self.loaded.format.hybrid
        return info


def open_database(settings: AppSettings) -> Store:
    """The store alone, for commands that need no model (``python -m app export``)."""
    return open_store(settings.db_url)
