"""The runtime: the heavy objects a server or CLI command shares -- loaded model, engine, store.

Built once per process from :class:`~app.settings.AppSettings` and passed to every service
function; nothing here is an import-time global, so tests build as many as they like.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from app.engine.interface import GenerationEngine
from app.engine.loading import LoadedModel, load_model
from app.errors import StoreError
from app.settings import AppSettings
from app.store.db import open_store
from app.store.repository import Store

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What every service needs: the engine (local or on a server, one interface), and the store.

    ``loaded`` describes the model (name, format, tokenizer); with ``--server`` it has no weights.
    """

    settings: AppSettings
    loaded: LoadedModel
    engine: GenerationEngine
    #: The database; None only for a command that saves nothing (``generate --no-save``), which never reads it.
    store: Store | None

    @classmethod
    def start(cls, settings: AppSettings, *, with_store: bool = True) -> Runtime:
        # The store first: a bad --db fails fast, before a slow model load. Without it (generate --no-save)
        # nothing touches the database at all.
        store = open_database(settings) if with_store else None
        if store is not None:
            store.check_writable()  # refuse a read-only database now, not after a run has nowhere to go
        if settings.server:
            return cls(settings=settings, store=store, **_remote_engine(settings))
        from app.engine.generation import Engine

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
        return cls(
            settings=settings,
            loaded=loaded,
            engine=Engine(loaded, capture_tokens=settings.token_data == "on"),
            store=store,
        )

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
        status = self.engine.status()
        if status.server is not None:  # a server engine: which server, and whether it answers right now
            info["server"] = status.server
            info["server_model"] = status.server_model
            info["server_error"] = status.error
        return info


def _remote_engine(settings: AppSettings) -> dict[str, Any]:
    """The tokenizer locally, the weights on ``settings.server``. A server that is down is logged, not fatal."""
    from app.engine.prompt_side import load_prompt_side
    from app.engine.remote import RemoteEngine
    from app.engine.remote_client import CompletionClient

    client = CompletionClient(settings.server, api_key=settings.api_key, model=settings.server_model)
    loaded = load_prompt_side(
        settings.model, format_name=settings.format or None, cache_dir=settings.cache_path, server=client.base_url
    )
    engine = RemoteEngine(
        loaded,
        client,
        capture_tokens=settings.token_data == "on",
        token_prompts=settings.server_prompt == "tokens",
    )
    problem = engine.status().error
    if problem:
        log.warning("%s The app starts anyway; generations fail until the server answers.", problem)
    else:
        log.info("Generating on %s (model %s), prompts from %s", client.base_url, client.model, loaded.name)
    return {"loaded": loaded, "engine": engine}


def open_database(settings: AppSettings) -> Store:
    """The store alone, for commands that need no model (``python -m app export``)."""
    return open_store(settings.db_url)
