"""Persistence: SQLAlchemy models, Alembic migrations and the ``Store`` API. Never imports torch or gradio.

Open a store with ``open_store(url)`` and pass it to whoever needs it.
"""

from app.store.db import open_store
from app.store.errors import NotFound, StoreError
from app.store.records import (
    AutoLabelRecord,
    BranchInfo,
    BranchLink,
    LabelProgress,
    LabelRecord,
    PreferenceRecord,
    QueueItem,
    RunSummary,
    StoredRun,
    StoredSample,
    StoredStep,
    SweepSummary,
)
from app.store.repository import Store

__all__ = [
    "AutoLabelRecord",
    "BranchInfo",
    "BranchLink",
    "LabelProgress",
    "LabelRecord",
    "NotFound",
    "PreferenceRecord",
    "QueueItem",
    "RunSummary",
    "Store",
    "StoreError",
    "StoredRun",
    "StoredSample",
    "StoredStep",
    "SweepSummary",
    "open_store",
]
