"""Running a prompt: stream the engine, then extract answers, segment steps and save -- always.

The one use-case the playground, self-consistency, compare and sweep views, and the CLI all share.
Every run is saved, including cancelled and failed ones (with the error), so nothing a person
waited for is lost: the row is written when generation starts and kept up to date while it runs
(:mod:`app.services.recording`), and every request passes the token caps first (:mod:`app.services.limits`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypedDict

from typing_extensions import Unpack

from app.domain import BranchLink, GenerationResult, GenerationSettings, SampleResult, TracePrefix
from app.engine.events import AnswerDelta, CancelToken, Event, Finished, Snapshot, SteerToken, ThinkingDelta
from app.reasoning.answers import extract_sample_answer
from app.reasoning.steps import segment_trace
from app.services.limits import checked_request
from app.services.recording import CHECKPOINT_SECONDS, RunRecorder, SaveTicket
from app.services.runtime import Runtime
from app.store.records import StoredRun
from app.store.repository import Store

log = logging.getLogger(__name__)
Messages = list[dict[str, str]]
#: Who a run belongs to when nobody logged in (no ``--auth``, or the CLI).
LOCAL_USER = "local"


@dataclass(frozen=True)
class Saved:
    """The last event of :func:`stream_run`: where the run was saved.

    ``ticket`` follows the save (see :mod:`app.services.recording`). When ``pending`` is True the database was
    busy and the save is still being retried in the background: ``run_id`` is then None until
    ``ticket.wait()`` returns. If the database refused the write for good, ``save_error`` says why: the trace
    itself is still handed back, never dropped.
    """

    run_id: int | None
    result: GenerationResult
    save_error: str | None = None
    kind: str = "playground"
    gold: str | None = None
    ticket: SaveTicket | None = None
    sample_ids: tuple[int, ...] = ()  # the stored samples' ids, by sample index, once saved

    @property
    def pending(self) -> bool:
        return self.ticket is not None and not self.ticket.settled


def run_status(result: GenerationResult) -> str:
    """``error`` if anything failed, ``cancelled`` if a sample was cut short by the user, else ``done``."""
    reasons = {s.stop_reason for s in result.samples}
    if result.error or "error" in reasons:
        return "error"
    return "cancelled" if "cancelled" in reasons else "done"


#: Stop reasons of a sample that did not finish: its text is half-written, so it has no answer.
UNFINISHED = frozenset({"cancelled", "error"})


def answer_of(sample: SampleResult) -> str | None:
    """The sample's extracted answer, or None when it has none to give.

    A cancelled or failed sample never has one (a number in half-written thinking is no answer). Otherwise the
    answer text comes first; the thinking is searched only when there is no answer text and the model ended on
    its own (stop reason ``end``: its thinking is complete), never after a cut (its thinking is unfinished)."""
    if sample.stop_reason in UNFINISHED:
        return None
    if not sample.answer.strip() and sample.stop_reason != "end":
        return None
    return extract_sample_answer(sample.thinking, sample.answer)


def finish_result(result: GenerationResult) -> list[list]:
    """Fill each sample's extracted answer (:func:`answer_of`) and return its steps (the store saves both)."""
    steps = []
    for sample in result.samples:
        sample.extracted_answer = answer_of(sample)
        steps.append(segment_trace(sample.thinking, sample.answer))
    return steps


def save_result(
    rt: Runtime,
    result: GenerationResult,
    *,
    kind: str = "playground",
    gold: str | None = None,
    sweep_id: int | None = None,
    label: str | None = None,
    user: str | None = None,
    branch: BranchLink | None = None,
) -> int:
    steps = finish_result(result)
    return rt.db.save_run(
        result,
        steps,
        kind=kind,
        status=run_status(result),
        gold=gold,
        sweep_id=sweep_id,
        label=label,
        created_by=user,
        branch=branch,
    )


class RunOptions(TypedDict, total=False):
    """The keyword options of :func:`stream_run` that :func:`run_prompt` passes on (all optional)."""

    kind: str
    gold: str | None
    sweep_id: int | None
    label: str | None
    save: bool
    prefix: TracePrefix | None
    steer: SteerToken | None
    branch: BranchLink | None


def stream_run(
    rt: Runtime,
    messages: Messages | str,
    settings: GenerationSettings,
    cancel: CancelToken | None = None,
    *,
    kind: str = "playground",
    gold: str | None = None,
    sweep_id: int | None = None,
    label: str | None = None,
    deltas: bool = True,
    save: bool = True,
    user: str | None = LOCAL_USER,
    wait_for_save: float | None = None,
    prefix: TracePrefix | None = None,
    steer: SteerToken | None = None,
    branch: BranchLink | None = None,
) -> Iterator[Event | Saved]:
    """Yield the engine's events, then :class:`Saved`. Bad input raises ``ValueError`` before anything runs.

    Every request passes :func:`app.services.limits.checked_request` (clean text, the token caps). The run's
    row is written when generation starts and its text saved every few seconds (:class:`RunRecorder`), so a
    crash leaves it ``interrupted`` with its partial text. ``user`` is recorded as its creator.
    ``wait_for_save``: how long to wait for the final save before yielding :class:`Saved` with ``pending``
    (None = until it has settled). ``save=False`` (the CLI's ``--no-save``) still extracts answers but writes
    nothing: ``Saved.run_id`` is None.
    ``prefix`` continues a stored trace (saved with ``branch`` as its lineage); ``steer`` is "Stop thinking now".
    A branched run is saved when it ends (no live row), so a crash loses an unfinished rollout.
    """
    msgs, settings = checked_request(rt.engine, messages, settings, rt.settings.max_new_tokens)
    recorder = None
    if save:
        recorder = RunRecorder(
            rt.db, kind=kind, gold=gold, sweep_id=sweep_id, label=label, created_by=user, branch=branch
        )
        recorder.begin(_empty_result(rt, msgs, settings))
    result: GenerationResult | None = None
    partial = _Partial()
    try:
        extra = {k: v for k, v in (("prefix", prefix), ("steer", steer)) if v is not None}
        for event in _engine_events(rt, msgs, settings, cancel, deltas, recorder is not None, extra):
            if isinstance(event, Finished):
                result = event.result
            elif recorder is not None:
                partial.add(event)
                if partial.samples:
                    recorder.checkpoint(partial.samples, partial.seconds())
            if not isinstance(event, Snapshot):
                yield event
    except Exception as exc:  # e.g. a prompt the format can't render: save the failure, don't lose it
        log.exception("generation failed")
        result = _empty_result(rt, msgs, settings, error=f"{type(exc).__name__}: {exc}")
        yield Finished(result)
    finally:
        if result is None and cancel is not None:  # the consumer stopped iterating before the engine finished
            cancel.cancel()
    assert result is not None
    yield _save(recorder, result, kind=kind, gold=gold, wait_for_save=wait_for_save)


def _empty_result(
    rt: Runtime, msgs: Messages, settings: GenerationSettings, error: str | None = None
) -> GenerationResult:
    """The run as it stands before any sample (its row at the start), or a failure with no samples."""
    return GenerationResult(
        model=rt.loaded.name,
        format=rt.loaded.format.name,
        settings=settings,
        samples=[],
        prompt=msgs[-1]["content"],
        messages=msgs,
        error=error,
        precision=rt.loaded.precision,
    )


def _save(
    recorder: RunRecorder | None, result: GenerationResult, *, kind: str, gold: str | None, wait_for_save: float | None
) -> Saved:
    """Finish ``result`` (answers, steps), hand it to ``recorder`` and wait up to ``wait_for_save`` for the save."""
    steps = finish_result(result)
    if recorder is None:
        return Saved(None, result, kind=kind, gold=gold)
    ticket = recorder.finish(result, steps, run_status(result))
    ticket.wait(wait_for_save)
    if not ticket.settled:
        return Saved(None, result, kind=kind, gold=gold, ticket=ticket)
    run_id = None if ticket.error else ticket.run_id
    ids = stored_sample_ids(recorder.store, run_id) if run_id is not None else ()
    return Saved(run_id, result, save_error=ticket.error, kind=kind, gold=gold, ticket=ticket, sample_ids=ids)


def stored_sample_ids(store: Store, run_id: int) -> tuple[int, ...]:
    """The saved samples' ids of run ``run_id``, by sample index (empty when the store can't say now: the run is
    saved all the same, only its JSON lacks them)."""
    try:
        samples = store.get_run(run_id).samples
    except Exception as exc:  # a busy database, a run deleted meanwhile: the ids are a courtesy
        log.info("could not read the sample ids of run %s: %s", run_id, exc)
        return ()
    by_index = {s.index: s.sample_id for s in samples}
    return tuple(by_index[i] for i in sorted(by_index))


def with_saved_ids(record: dict[str, Any], run_id: int | None, sample_ids: tuple[int, ...]) -> dict[str, Any]:
    """:func:`run_json`'s ``record`` with the ids a save (finished later, e.g. after a busy database) gave it."""
    samples = [
        {**sample, "sample_id": sample_ids[i] if i < len(sample_ids) else None}
        for i, sample in enumerate(record.get("samples") or [])
    ]
    return {**record, "run_id": run_id, "samples": samples}


def _engine_events(
    rt: Runtime,
    msgs: Messages,
    settings: GenerationSettings,
    cancel: CancelToken | None,
    deltas: bool,
    snap: bool,
    extra: dict[str, Any],
) -> Iterator[Event]:
    """The engine's stream, with periodic :class:`Snapshot` events when ``snap``."""
    snapshot_every = CHECKPOINT_SECONDS if snap else None
    return rt.engine.stream(msgs, settings, cancel, deltas=deltas, snapshot_every=snapshot_every, **extra)


class _Partial:
    """The text so far, from :class:`Snapshot` events (any engine) or text deltas (when there are no snapshots)."""

    def __init__(self) -> None:
        self.samples: list[SampleResult] = []
        self.started = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def add(self, event: Event) -> None:
        if isinstance(event, Snapshot):
            self.samples = list(event.samples)
        elif isinstance(event, ThinkingDelta | AnswerDelta):
            while len(self.samples) <= event.sample:
                self.samples.append(
                    SampleResult(len(self.samples), "", "", "", 0, 0, "cancelled", seconds=self.seconds())
                )
            sample = self.samples[event.sample]
            if isinstance(event, ThinkingDelta):
                sample.thinking += event.text
            else:
                sample.answer += event.text


def run_prompt(
    rt: Runtime,
    messages: Messages | str,
    settings: GenerationSettings,
    cancel: CancelToken | None = None,
    **options: Unpack[RunOptions],
) -> Saved:
    """Run to completion and return what was saved (no deltas); ``options`` are :func:`stream_run`'s."""
    saved = None
    for event in stream_run(rt, messages, settings, cancel, deltas=False, **options):
        if isinstance(event, Saved):
            saved = event
    assert saved is not None
    return saved


@dataclass(frozen=True)
class _WithId:
    """A just-generated sample with the id the store gave it (None before it was saved)."""

    sample: SampleResult
    sample_id: int | None

    def to_result(self) -> SampleResult:
        return self.sample


def run_json(run: Saved | StoredRun) -> dict[str, Any]:
    """THE JSON shape of a run: what ``/generate`` returns last, ``/get_run`` returns, and the CLI's ``--json`` prints.

    ``{"run_id", "created_at", "kind", "status", "model", "format", "precision", "prompt", "messages", "settings", "error",
    "gold", "seconds", "samples": [{"sample_id", <every SampleResult field>}, ...]}``. A run just generated has
    ``created_at`` None (and ``run_id``/``sample_id`` None when it was not saved) and a ``save`` state. A
    per-sample field added to ``SampleResult`` appears here by itself.
    """
    if isinstance(run, StoredRun):
        result, run_id, samples = run.to_result(), run.run_id, list(run.samples)
        meta = {"created_at": run.created_at.isoformat(), "kind": run.kind, "status": run.status, "gold": run.gold}
        error = run.error
    else:
        result, run_id = run.result, run.run_id
        ids = dict(enumerate(run.sample_ids))
        samples = [_WithId(s, ids.get(i)) for i, s in enumerate(run.result.samples)]
        meta = {"created_at": None, "kind": run.kind, "status": run_status(result), "gold": run.gold}
        error = result.error
        # How the save went: "saved", "saving" (a busy database; retried in the background), "failed" or
        # "off" (--no-save). Only a run just generated has this.
        meta["save"] = (
            "saving" if run.pending else "failed" if run.save_error else "off" if run.ticket is None else "saved"
        )
    return {
        "run_id": run_id,
        **meta,
        "model": result.model,
        "format": result.format,
        "precision": result.precision,
        "prompt": result.prompt,
        "messages": list(result.messages),
        "settings": result.settings.to_dict(),
        "error": error,
        "seconds": result.seconds,
        "samples": [{"sample_id": getattr(s, "sample_id", None), **s.to_result().to_dict()} for s in samples],
    }
