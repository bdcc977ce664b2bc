"""Saving a run while it runs, off the generation's path: nothing a person waited for is lost to a crash or
a busy database; and recovering the runs whose process died.

A :class:`RunRecorder` owns one run's writes and does them, in order, on its own thread:

1. ``begin``: the run's row, as soon as generation starts (``lifecycle = 'running'``);
2. ``checkpoint``: the text so far, at most every :data:`CHECKPOINT_SECONDS` (a cheap replace of the samples);
3. a heartbeat (``runs.heartbeat_at``) at least every :func:`heartbeat_seconds`, also while no new text
   arrives (a long prompt, a slow server): the proof that the run's process is alive;
4. ``finish``: the final samples and steps (or, if the row could never be written, the whole run at once).

The generation never waits for the database. A busy database (another writer holds the lock past SQLite's
busy timeout) is retried with backoff for :data:`SAVE_RETRY_SECONDS`; a checkpoint or heartbeat that finds it
busy is simply skipped (the next one carries on). Any other database error fails the save at once and is
reported. :class:`SaveTicket` tells the caller how the final save went: ``saving`` → ``saved`` or ``failed``.
A recorder dropped without ``finish`` (its generation abandoned) stops beating.

Recovery (:func:`recover_stale_runs`, at every start of the app and of every CLI command that opens the
database, and while a server runs every :func:`stale_after` seconds, :func:`keep_recovering`): a process killed mid-run leaves its row ``running`` with the last checkpoint and a heartbeat that
no longer moves; once that heartbeat is older than :func:`stale_after` (:data:`STALE_HEARTBEATS` missed
heartbeats: 30 s by default) the run becomes ``interrupted``. A live run of another process sharing the
database keeps beating and is never touched.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TypedDict

from app.domain import BranchLink, GenerationResult, SampleResult
from app.domain import Step as DomainStep
from app.errors import InvalidInput, UserError
from app.store.errors import DatabaseBusy
from app.store.repository import Store

log = logging.getLogger(__name__)

#: Seconds between two partial saves of a running run.
CHECKPOINT_SECONDS = 2.0
#: Seconds between two heartbeats of a running run; ``TRACELAB_HEARTBEAT_SECONDS`` overrides it (read when a
#: recorder or a recovery starts; tests use a short one).
HEARTBEAT_SECONDS = 5.0
HEARTBEAT_ENV = "TRACELAB_HEARTBEAT_SECONDS"
#: Missed heartbeats after which a ``running`` run counts as dead: 6 x 5 s = 30 s, longer than SQLite's
#: busy timeout and a 20 s database lock, during which no heartbeat can be written.
STALE_HEARTBEATS = 6
#: How long a busy database is retried before the save is given up (the issue asks for at least 30 s).
SAVE_RETRY_SECONDS = 120.0
#: Backoff between retries: doubles from the first to the last value.
RETRY_FIRST, RETRY_MAX = 0.5, 8.0


def heartbeat_seconds() -> float:
    """The heartbeat interval: :data:`HEARTBEAT_SECONDS`, or ``TRACELAB_HEARTBEAT_SECONDS`` when set."""
    raw = os.environ.get(HEARTBEAT_ENV, "").strip()
    if not raw:
        return HEARTBEAT_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not 0.05 <= seconds <= 3600:  # NaN fails too
        raise InvalidInput(
            f"{HEARTBEAT_ENV}={raw[:40]!r} is not a number of seconds between 0.05 and 3600; fix or unset it"
        )
    return seconds


def stale_after() -> float:
    """Seconds without a heartbeat after which a ``running`` run is taken to be dead (30 s by default)."""
    return STALE_HEARTBEATS * heartbeat_seconds()


def recover_stale_runs(store: Store) -> int:
    """At start-up (server or CLI): runs left ``running`` by a process that died become ``interrupted``,
    keeping their last partial save; runs whose heartbeat is fresh (alive elsewhere) are left alone. A database
    that can't take the write right now (read-only, busy) is logged and skipped: the next start tries again.
    Returns how many runs were marked."""
    stale = stale_after()  # a bad TRACELAB_HEARTBEAT_SECONDS is refused here, in one line
    try:
        recovered = store.interrupt_running_runs(stale_seconds=stale)
    except UserError as exc:  # read-only, busy: this start goes on
        log.warning("runs left running by a stopped process were not checked: %s", exc)
        return 0
    if recovered:
        log.warning(
            "%d run(s) were left running by a process that stopped (no heartbeat for %.0f s); kept as 'interrupted'",
            recovered,
            stale,
        )
    return recovered


def keep_recovering(store: Store, stop: threading.Event) -> threading.Thread:
    """For a long-running server: :func:`recover_stale_runs` every :func:`stale_after` seconds until ``stop``
    is set, so a CLI run killed while the server is up doesn't show as running in History until its restart."""

    def loop() -> None:
        while not stop.wait(stale_after()):
            try:
                recover_stale_runs(store)
            except Exception:  # never let the sweep die silently; the next one tries again
                log.exception("recovering stale runs failed")

    thread = threading.Thread(target=loop, name="tracelab-recovery", daemon=True)
    thread.start()
    return thread


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
        self.checkpoint_seconds = checkpoint_seconds
        self.ticket = SaveTicket()
        meta = RunMeta(kind=kind, gold=gold, sweep_id=sweep_id, label=label, created_by=created_by)
        self._writer = _Writer(store, meta, branch, self.ticket, retry_seconds, heartbeat_seconds())
        self._last_checkpoint = 0.0
        # The writer's thread holds the writer, never this object: dropped without finish(), it stops beating.
        weakref.finalize(self, self._writer.ops.put, _ABANDONED)
        self.thread = threading.Thread(target=self._writer.work, name="tracelab-recorder", daemon=True)
        self.thread.start()

    @property
    def run_id(self) -> int | None:
        """The run's id once its row is written (None before, and for a branch until its final save)."""
        return self._writer.run_id

    # -- the caller's side (the generation's thread): never blocks ----------------------------------

    def begin(self, head: GenerationResult) -> None:
        """The run starts: ``head`` has its prompt, messages, model, format and settings (no samples)."""
        self._last_checkpoint = time.monotonic()
        if self.branch is None:
            self._writer.ops.put(_Begin(replace(head, samples=[])))

    def checkpoint(self, samples: list[SampleResult], seconds: float) -> None:
        """Offer the text so far; written if :data:`CHECKPOINT_SECONDS` passed since the last one."""
        now = time.monotonic()
        if now - self._last_checkpoint >= self.checkpoint_seconds:
            self._last_checkpoint = now
            self._writer.ops.put(_Checkpoint([replace(s) for s in samples], seconds))

    def finish(self, result: GenerationResult, steps: list[list[DomainStep]], status: str) -> SaveTicket:
        """The run ended: save it for good. Returns the ticket that says when that happened."""
        self._writer.ops.put(_Finish(result, steps, status))
        self._writer.ops.put(None)
        return self.ticket


#: Put on a writer's queue when its recorder is garbage-collected without ``finish``.
_ABANDONED = object()


class _Writer:
    """The recorder's thread: the run's writes in order, and a heartbeat whenever the queue stays quiet."""

    def __init__(
        self, store: Store, meta: RunMeta, branch: BranchLink | None, ticket: SaveTicket, retry: float, beat: float
    ) -> None:
        self.store, self.meta, self.branch, self.ticket = store, meta, branch, ticket
        self.retry_seconds, self.beat_seconds = retry, beat
        self.ops: queue.Queue[object] = queue.Queue()
        self.run_id: int | None = None
        self._beating = True  # until the row turns out to be no longer running
        self._last_write = time.monotonic()

    def work(self) -> None:
        while True:
            try:
                op = self.ops.get(timeout=max(0.0, self._last_write + self.beat_seconds - time.monotonic()))
            except queue.Empty:
                self._beat()
                continue
            if op is None or op is _ABANDONED:
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
                elif isinstance(op, _Checkpoint) and self.run_id is not None and self.ops.empty():
                    self.store.checkpoint_run(self.run_id, op.samples, op.seconds)  # stale if a newer op waits
            except Exception as exc:  # the finish tries again (a whole save_run if the row was never written)
                log.debug("saving the run so far failed: %s", exc)
            self._last_write = time.monotonic()

    def _beat(self) -> None:
        """No write for a heartbeat's time: say the run's process is still alive."""
        self._last_write = time.monotonic()
        if self.run_id is None or not self._beating:
            return
        try:
            self._beating = self.store.runs.heartbeat_run(self.run_id)
        except Exception as exc:  # busy: the next beat tries again
            log.debug("the run's heartbeat was not written: %s", exc)

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
