"""Running a prompt: stream the engine, then extract answers, segment steps and save -- always.

The one use-case the playground, self-consistency, compare and sweep views, and the CLI all share.
Every run is saved, including cancelled and failed ones (with the error), so nothing a person
waited for is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypedDict

from typing_extensions import Unpack

from app.domain import GenerationResult, GenerationSettings, TracePrefix
from app.engine.events import CancelToken, Event, Finished, SteerToken
from app.reasoning.answers import extract_sample_answer
from app.reasoning.steps import segment_trace
from app.services.runtime import Runtime
from app.store.records import BranchLink, StoredRun

log = logging.getLogger(__name__)
Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Saved:
    """The last event of :func:`stream_run`: the run is in the store under ``run_id``.

    If the database refused the write (busy past its timeout, disk full, gone), ``run_id`` is None and
    ``save_error`` says why: the trace itself is still handed back, never dropped.
    """

    run_id: int | None
    result: GenerationResult
    save_error: str | None = None
    kind: str = "playground"
    gold: str | None = None


def run_status(result: GenerationResult) -> str:
    """``error`` if anything failed, ``cancelled`` if a sample was cut short by the user, else ``done``."""
    reasons = {s.stop_reason for s in result.samples}
    if result.error or "error" in reasons:
        return "error"
    return "cancelled" if "cancelled" in reasons else "done"


def finish_result(result: GenerationResult) -> list[list]:
    """Fill each sample's extracted answer and return its steps (the store saves both)."""
    steps = []
    for sample in result.samples:
        sample.extracted_answer = extract_sample_answer(sample.thinking, sample.answer)
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
    branch: BranchLink | None = None,
) -> int:
    steps = finish_result(result)
    return rt.db.save_run(
        result, steps, kind=kind, status=run_status(result), gold=gold, sweep_id=sweep_id, label=label, branch=branch
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


def require_prompt(prompt: str) -> None:
    """The one check that a request has a prompt: a ``ValueError`` saying so when it is blank."""
    if not (prompt or "").strip():
        raise ValueError("The prompt is empty: type a question first.")


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
    prefix: TracePrefix | None = None,
    steer: SteerToken | None = None,
    branch: BranchLink | None = None,
) -> Iterator[Event | Saved]:
    """Yield the engine's events, then :class:`Saved`. An empty prompt raises ``ValueError`` before anything runs
    (the settings were validated when they were built).

    ``save=False`` (the CLI's ``--no-save``) still extracts answers but writes nothing: ``Saved.run_id`` is None.
    ``prefix`` continues a stored trace (saved with ``branch`` as its lineage); ``steer`` is "Stop thinking now".
    """
    msgs: Messages = [{"role": "user", "content": messages}] if isinstance(messages, str) else list(messages)
    require_prompt(msgs[-1].get("content", "") if msgs else "")
    result: GenerationResult | None = None
    try:
        extra = {k: v for k, v in (("prefix", prefix), ("steer", steer)) if v is not None}
        for event in rt.engine.stream(msgs, settings, cancel, deltas=deltas, **extra):
            if isinstance(event, Finished):
                result = event.result
            yield event
    except Exception as exc:  # e.g. a prompt the format can't render: save the failure, don't lose it
        log.exception("generation failed")
        result = GenerationResult(
            model=rt.loaded.name,
            format=rt.loaded.format.name,
            settings=settings,
            samples=[],
            prompt=msgs[-1]["content"],
            messages=msgs,
            error=f"{type(exc).__name__}: {exc}",
            precision=rt.loaded.precision,
        )
        yield Finished(result)
    finally:
        if result is None and cancel is not None:  # the consumer stopped iterating before the engine finished
            cancel.cancel()
    assert result is not None
    if not save:
        finish_result(result)
        yield Saved(None, result, kind=kind, gold=gold)
        return
    try:
        run_id = save_result(rt, result, kind=kind, gold=gold, sweep_id=sweep_id, label=label, branch=branch)
    except Exception as exc:  # the store's errors and the driver's: keep the trace, report the failure
        log.exception("saving the run failed")
        yield Saved(None, result, save_error=f"The run could not be saved: {exc}", kind=kind, gold=gold)
        return
    yield Saved(run_id, result, kind=kind, gold=gold)


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


def run_json(run: Saved | StoredRun) -> dict[str, Any]:
    """THE JSON shape of a run: what ``/generate`` returns last, ``/get_run`` returns, and the CLI's ``--json`` prints.

    ``{"run_id", "created_at", "kind", "status", "model", "format", "precision", "prompt", "messages", "settings", "error",
    "gold", "seconds", "samples": [{"sample_id", <every SampleResult field>}, ...]}``. A run just generated has
    ``created_at`` None (and ``run_id``/``sample_id`` None when it was not saved). A per-sample field added to
    ``SampleResult`` appears here by itself.
    """
    if isinstance(run, StoredRun):
        result, run_id, samples = run.to_result(), run.run_id, list(run.samples)
        meta = {"created_at": run.created_at.isoformat(), "kind": run.kind, "status": run.status, "gold": run.gold}
        error = run.error
    else:
        result, run_id, samples = run.result, run.run_id, list(run.result.samples)
        meta = {"created_at": None, "kind": run.kind, "status": run_status(result), "gold": run.gold}
        error = result.error
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
