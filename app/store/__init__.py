"""Persistence: SQLAlchemy models, Alembic migrations and the ``Store`` API. Never imports torch or gradio.

Open a store with ``open_store(url)`` and pass it to whoever needs it. Where to start reading:
``repository.py`` (what ``Store`` is made of: one repository per aggregate), ``sessions.py`` (one session
per method, driver errors in words), ``records.py`` (what the methods return), ``models.py`` (the tables).
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
    ProbeRunRecord,
    ProbeSummary,
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
    "ProbeRunRecord",
    "ProbeSummary",
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
