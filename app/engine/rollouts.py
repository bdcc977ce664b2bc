"""Rollouts: N continuations of each of several trace prefixes, the rules both engines follow.

:func:`stream_rollouts` checks the request, then hands it to the engine's own ``stream_rollouts``: on the local
engine one batched generate through the one decode loop (app.engine.decode: a batch of prefixes, each prefix's
KV cache reused for its N rows), on a server N concurrent requests per prefix (app.engine.remote). Every row runs
under the same budget rules as a normal generate, with the thinking already written in its prefix counted
against the budget.

Knows nothing about steps, votes or storage: it takes :class:`~app.domain.TracePrefix` objects and returns
one list of :class:`~app.domain.SampleResult` per prefix (a :class:`~app.engine.events.RolloutBatch`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from app.domain import GenerationSettings, Messages, TracePrefix
from app.engine.events import CancelToken, Progress, RolloutBatch
from app.engine.interface import GenerationEngine

__all__ = ["RolloutBatch", "stream_rollouts"]


def stream_rollouts(
    engine: GenerationEngine,
    messages: Messages | str,
    prefixes: Sequence[TracePrefix],
    settings: GenerationSettings,
    n: int,
    cancel: CancelToken | None = None,
    *,
    reuse_cache: bool = True,
) -> Iterator[Progress | RolloutBatch]:
    """Yield :class:`Progress` while the ``len(prefixes) * n`` rows decode, then one :class:`RolloutBatch`.

    ``settings`` gives the budget and sampling rules (``settings.samples`` is ignored: ``n`` rollouts per
    prefix). A prefix with ``fresh_budget`` is refused here: rollouts always count the prefix's thinking.
    ``reuse_cache`` (local engine): continue each prefix's N rows from one KV cache.
    """
    if n < 1:
        raise ValueError(f"n={n} rollouts must be at least 1")
    if not prefixes:
        raise ValueError("no prefixes to roll out from; pick at least one step")
    if any(p.fresh_budget for p in prefixes):
        raise ValueError("rollouts count the prefix's thinking against the budget; fresh_budget is for Think longer")
    yield from engine.stream_rollouts(messages, prefixes, settings, n, cancel, reuse_cache=reuse_cache)
