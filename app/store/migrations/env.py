"""Alembic environment for the store's schema.

``open_store`` runs it programmatically and hands over its connection (``config.attributes["connection"]``),
already inside a transaction. Run by hand it connects to ``sqlalchemy.url`` itself. It never configures
logging, so it cannot clobber the application's.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from app.store.db import make_engine
from app.store.models import Base
from app.store.search import is_search_index

config = context.config
target_metadata = Base.metadata


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
        include_name=lambda name, kind, parent: not is_search_index(name),  # FTS tables, trigram indexes
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as own_connection:
            _configure_and_run(own_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
