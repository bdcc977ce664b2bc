"""``Store``: the one object the services hold to persist and query runs, steps, labels and preferences.

It is built by ``db.open_store(url)`` and passed in, never imported as a global. Each concern lives in its own
module as a mixin over ``base.StoreBase``; every method opens its own short session and returns plain records
(``records.py``) or domain dataclasses, never ORM rows.
"""

from __future__ import annotations

from app.store.auto_labels import AutoLabelsMixin
from app.store.branches import BranchesMixin
from app.store.exports import ExportsMixin
from app.store.labels import LabelsMixin
from app.store.preferences import PreferencesMixin
from app.store.probes import ProbesMixin
from app.store.queue import QueueMixin
from app.store.runs import RunsMixin
from app.store.steps import StepsMixin


class Store(
    RunsMixin,
    StepsMixin,
    LabelsMixin,
    QueueMixin,
    PreferencesMixin,
    ExportsMixin,
    BranchesMixin,
    AutoLabelsMixin,
    ProbesMixin,
):
    """Persistence for tracelab; see the mixins' modules for each group of methods."""

    def __repr__(self) -> str:
        return f"Store({self.url!r})"
