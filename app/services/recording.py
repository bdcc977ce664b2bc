"""Saving a run while it runs, off the generation's path: nothing a person waited for is lost to a crash or
a busy database.

A :class:`RunRecorder` owns one run's writes and does them, in order, on its own thread:

1. ``begin``: the run's row, as soon as generation starts (``lifecycle = 'running'``);
2. ``checkpoint``: the text so far, at most every :data:`CHECKPOINT_SECONDS` (a cheap replace of the samples);
3. ``finish``: the final samples and steps (or, if the row could never be written, the whole run at once).

The generation never waits for the database. A busy database (another writer holds the lock past SQLite's
busy timeout) is retried with backoff for :data:`SAVE_RETRY_SECONDS`; a checkpoint that finds it busy is
simply skipped (the next one carries the newer text). Any other database error fails the save at once and is
reported. :class:`SaveTicket` tells the caller how the final save went: ``saving`` → ``saved`` or ``failed``.
A server killed mid-run leaves its row ``running`` with the last checkpoint; the next start marks it
``interrupted`` (``Store.interrupt_running_runs``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TypedDict

from app.domain import BranchLink, GenerationResult, SampleResult
from app.domain import Step as DomainStep
from app.store.errors import DatabaseBusy
from app.store.repository import Store

log = logging.getLogger(__name__)

#: Seconds between two partial saves of a running run.
CHECKPOINT_SECONDS = 2.0
#: How long a busy database is retried before the save is given up (the issue asks for at least 30 s).
SAVE_RETRY_SECONDS = 120.0
#: Backoff between retries: doubles from the first to the last value.
RETRY_FIRST, RETRY_MAX = 0.5, 8.0


def mark_interrupted(store: Store) -> int:
    """At server start-up: runs a previous server left ``running`` (it was killed) become ``interrupted``,
    keeping their last partial save. Returns how many."""
    return store.interrupt_running_runs()


class SaveTicket:
    """How the final save of one run is going; thread-safe. ``state`` is ``saving``, ``saved`` or ``failed``."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._lock = threading.Lock()
        self.state = "saving"
        self.run_id: int | None = None
        self.error: str | None = None
        self.retrying = False  # True once the database turned out to be busy

    def _settle(self, run_id: int | None, error: str | None) -> None:
        with self._lock:
            self.run_id, self.error = run_id, error
            self.state = "saved" if error is None else "failed"
        self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """True once the save has settled (saved or failed) within ``timeout`` seconds."""
        return self._done.wait(timeout)

    @property
    def settled(self) -> bool:
        return self._done.is_set()


class RunMeta(TypedDict):
    """What a recorder saves with its run besides the result (``Store.begin_run`` / ``save_run`` arguments)."""

    kind: str
    gold: str | None
    sweep_id: int | None
    label: str | None
    created_by: str | None


@dataclass(frozen=True)
class _Begin:
    head: GenerationResult


@dataclass(frozen=True)
class _Checkpoint:
    samples: list[SampleResult]
    seconds: float


@dataclass(frozen=True)
class _Finish:
    result: GenerationResult
    steps: list[list[DomainStep]]
    status: str


class RunRecorder:
    """Writes one run to ``store`` as it goes (see the module docstring). Call :meth:`begin` once, then
    :meth:`checkpoint` as often as you like, then :meth:`finish` exactly once."""

    def __init__(
        self,
        store: Store,
        *,
        kind: str = "playground",
        gold: str | None = None,
        sweep_id: int | None = None,
        label: str | None = None,
        created_by: str | None = None,
        retry_seconds: float = SAVE_RETRY_SECONDS,
        checkpoint_seconds: float = CHECKPOINT_SECONDS,
        branch: BranchLink | None = None,
    ) -> None:
        self.store = store
        self.branch = branch  # a rollout's lineage: saved whole at the end (save_run links it), no live row
        self.meta = RunMeta(kind=kind, gold=gold, sweep_id=sweep_id, label=label, created_by=created_by)
        self.retry_seconds = retry_seconds
        self.checkpoint_seconds = checkpoint_seconds
        self.ticket = SaveTicket()
        self.run_id: int | None = None
        self._ops: queue.Queue[_Begin | _Checkpoint | _Finish | None] = queue.Queue()
        self._last_checkpoint = 0.0
        self._thread = threading.Thread(target=self._work, name="tracelab-recorder", daemon=True)
        self._thread.start()

    # -- the caller's side (the generation's thread): never blocks ----------------------------------

    def begin(self, head: GenerationResult) -> None:
        """The run starts: ``head`` has its prompt, messages, model, format and settings (no samples)."""
        self._last_checkpoint = time.monotonic()
        if self.branch is None:
            self._ops.put(_Begin(replace(head, samples=[])))

    def checkpoint(self, samples: list[SampleResult], seconds: float) -> None:
        """Offer the text so far; written if :data:`CHECKPOINT_SECONDS` passed since the last one."""
        now = time.monotonic()
        if now - self._last_checkpoint >= self.checkpoint_seconds:
            self._last_checkpoint = now
            self._ops.put(_Checkpoint([replace(s) for s in samples], seconds))

    def finish(self, result: GenerationResult, steps: list[list[DomainStep]], status: str) -> SaveTicket:
        """The run ended: save it for good. Returns the ticket that says when that happened."""
        self._ops.put(_Finish(result, steps, status))
        self._ops.put(None)
        return self.ticket

    # -- the recorder's thread ----------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            op = self._ops.get()
            if op is None:
                return
            if isinstance(op, _Finish):
                try:
                    self._finish(op)
                except Exception as exc:  # busy past the retries, read-only, disk full: reported, never raised
                    log.debug("saving the run failed: %s", exc)  # the caller reports it (ticket.error)
                    self.ticket._settle(self.run_id, f"The run could not be saved: {exc}")
                continue
            try:
                if isinstance(op, _Begin):
                    self.run_id = self._retry(partial(self.store.begin_run, op.head, **self.meta))
                elif self.run_id is not None and self._ops.empty():  # a checkpoint; stale if a newer op waits
                    self.store.checkpoint_run(self.run_id, op.samples, op.seconds)
            except Exception as exc:  # the finish tries again (a whole save_run if the row was never written)
                log.debug("saving the run so far failed: %s", exc)

    def _finish(self, op: _Finish) -> None:
        if self.run_id is not None:
            run_id = self.run_id
            self._retry(lambda: self.store.finish_run(run_id, op.result, op.steps, status=op.status))
        else:
            self.run_id = self._retry(
                lambda: self.store.save_run(op.result, op.steps, status=op.status, branch=self.branch, **self.meta)
            )
        self.ticket._settle(self.run_id, None)

    def _retry(self, write: Callable[[], int | None]) -> int | None:
        """Run ``write``; while the database is busy, back off and try again for ``retry_seconds``."""
        deadline = time.monotonic() + self.retry_seconds
        delay = RETRY_FIRST
        while True:
            try:
                return write()
            except DatabaseBusy:
                self.ticket.retrying = True
                if time.monotonic() + delay > deadline:
                    raise
                log.info("database busy; saving the run again in %.1f s", delay)
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
