"""Think longer: resume a finished trace from the end of its thinking with "Wait" and a fresh budget.

Saved as one run linked to its parent (kind ``think_longer``); the Playground's "Think longer" button and its API
call :func:`stream_think_longer`.
"""

from __future__ import annotations

from collections.abc import Iterator

from app.domain import BranchLink, GenerationSettings, TracePrefix
from app.engine.events import CancelToken, Event, SteerToken
from app.errors import InvalidInput
from app.services.branching import load_source
from app.services.runs import LOCAL_USER, Saved, stream_run
from app.services.runtime import Runtime


def stream_think_longer(
    rt: Runtime,
    run_id: int,
    sample_index: int = 0,
    *,
    settings: GenerationSettings | None = None,
    cancel: CancelToken | None = None,
    steer: SteerToken | None = None,
    deltas: bool = True,
    user: str | None = LOCAL_USER,
) -> Iterator[Event | Saved]:
    """Resume a finished trace from the end of its thinking with the continuation string ("Wait") appended and
    a fresh thinking budget; saved as one run linked to its parent (kind ``think_longer``, last step kept)."""
    source = load_source(rt, run_id, sample_index)
    settings = (settings or source.run.settings).with_(samples=1, thinking=True)
    thinking = source.sample.thinking.rstrip()
    if not thinking:
        raise InvalidInput(
            f"sample {sample_index + 1} of run {run_id} did not think (thinking was off), so there is no "
            "thinking to continue; run the prompt again with thinking on"
        )
    continuation = settings.continuation.strip() or "Wait"
    prefix = TracePrefix(thinking=f"{thinking}\n{continuation}", fresh_budget=True)
    last_thinking = max((s.index for s in source.steps if s.source == "thinking"), default=-1)
    link = BranchLink(run_id, sample_index, last_thinking, "think_longer")
    yield from stream_run(
        rt,
        source.messages,
        settings,
        cancel,
        kind="playground",
        gold=source.run.gold,
        deltas=deltas,
        prefix=prefix,
        steer=steer,
        branch=link,
        user=user,
        label=f"think longer from run {run_id} · sample {sample_index + 1}",
    )
