"""Rollouts: N continuations of each of several trace prefixes, in one batched generate per chunk.

Owns the batching of branch rollouts and the reuse of each prefix's KV cache. For a chunk of P prefixes
(left-padded to one length) the prompt-plus-prefix is encoded ONCE, as P rows; the cache is then repeated to
P x N rows and ``generate`` continues from it, so the prefill is paid once per prefix instead of once per
rollout (the outputs are identical to encoding every row: tests pin that). Every row runs under the same
budget rules as a normal generate (one :class:`~app.engine.budget.ThinkingBudgetProcessor`), with the thinking
already written in its prefix counted against the budget.

Knows nothing about steps, votes or storage: it takes :class:`~app.domain.TracePrefix` objects and returns
one list of :class:`~app.domain.SampleResult` per prefix.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache, StoppingCriteriaList

from app.domain import GenerationSettings, SampleResult, TracePrefix
from app.engine.budget import DONE, BudgetPlan, ThinkingBudgetProcessor
from app.engine.events import CancelToken, Progress
from app.engine.formats import build_prompt
from app.engine.generation import Engine, Messages, _Cancelled, _TickStreamer, decoding_kwargs
from app.engine.interface import GenerationEngine
from app.engine.torch_thread import submit_to_torch_thread

_END = object()


@dataclass
class RolloutBatch:
    """The last item :func:`stream_rollouts` yields: ``samples[p]`` are the N continuations of prefix ``p``."""

    samples: list[list[SampleResult]]
    seconds: float
    error: str | None = None
    reused_cache: bool = False


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

    On the local engine the rows are one batched generate (below); a server engine runs them as concurrent
    requests (``RemoteEngine.stream_rollouts``), same batch shape.

    ``settings`` gives the budget and sampling rules (``settings.samples`` is ignored: ``n`` rollouts per
    prefix). A prefix with ``fresh_budget`` is refused here: rollouts always count the prefix's thinking.
    """
    if n < 1:
        raise ValueError(f"n={n} rollouts must be at least 1")
    if not prefixes:
        raise ValueError("no prefixes to roll out from; pick at least one step")
    if any(p.fresh_budget for p in prefixes):
        raise ValueError("rollouts count the prefix's thinking against the budget; fresh_budget is for Think longer")
    if not isinstance(engine, Engine):  # a server engine: N concurrent requests per prefix (app.engine.remote)
        remote = getattr(engine, "stream_rollouts", None)
        if remote is None:
            raise ValueError(f"{type(engine).__name__} cannot continue trace prefixes; use the local engine")
        yield from remote(messages, prefixes, settings, n, cancel)
        return
    msgs: Messages = [{"role": "user", "content": messages}] if isinstance(messages, str) else list(messages)
    cancel = cancel or CancelToken()
    tok = engine.tokenizer
    thinking = settings.thinking
    prompt = build_prompt(engine.format, tok, msgs, thinking)
    leads, starts = zip(*(engine.prefix_start(p, thinking) for p in prefixes), strict=True)
    max_think, min_think = settings.resolved_budget()
    plan = BudgetPlan.build(
        tok,
        thinking=thinking,
        max_thinking=max_think,
        min_thinking=min_think,
        max_continuations=settings.max_continuations,
        max_answer=settings.max_answer_tokens,
        close_tag=engine.format.close_tag,
        continuation=settings.continuation,
        answer_cue=settings.answer_cue,
        stop_ids=engine.stop_ids,
    )
    input_ids, attention = _left_padded(tok, [prompt + lead for lead in leads], engine.stop_ids[0])
    rows = len(prefixes) * n
    row_starts = [start for start in starts for _ in range(n)]
    processor = ThinkingBudgetProcessor(plan, tok, rows, input_ids.shape[1], starts=row_starts)
    events: queue.Queue = queue.Queue()
    forced = len(plan.end_ids) + len(plan.cue_ids) + 1
    max_new = (max_think + forced if thinking else 0) + settings.max_answer_tokens + 1
    gen_kwargs: dict[str, Any] = {
        "max_new_tokens": max_new,
        "stopping_criteria": StoppingCriteriaList([_Cancelled(cancel)]),
        "streamer": _TickStreamer(processor, events),
        "eos_token_id": engine.stop_ids,
        "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else engine.stop_ids[0],
        **decoding_kwargs(processor, settings, engine.model.device),  # samples as a run does (CPU: own draw)
    }
    errors: list[BaseException] = []
    reused: list[bool] = []
    started = time.perf_counter()

    def work() -> None:  # on the model thread: all tensor work here
        try:
            with torch.inference_mode():
                if settings.seed is not None:
                    torch.manual_seed(settings.seed)
                device = engine.model.device
                ids, mask = input_ids.to(device), attention.to(device)
                extra: dict[str, Any] = {}
                if reuse_cache and ids.shape[1] > 1:
                    cache = _prefix_cache(engine.model, ids, mask)
                    if cache is not None:
                        cache.batch_repeat_interleave(n)
                        extra["cache"] = cache
                        reused.append(True)
                output = engine.model.generate(
                    input_ids=ids.repeat_interleave(n, dim=0),
                    attention_mask=mask.repeat_interleave(n, dim=0),
                    **gen_kwargs,
                    **extra,
                )
                processor.sync(output)
                del output, extra
        except BaseException as exc:  # reported on every sample as stop_reason "error", never lost
            errors.append(exc)
        finally:
            events.put(_END)

    job = submit_to_torch_thread(work)
    finished = False
    try:
        while True:
            item = events.get()
            if item is _END:
                finished = True
                break
            if events.empty():
                done = sum(row.phase == DONE for row in processor.rows)
                yield Progress(tokens=processor.generated, done=done, total=rows)
    finally:
        if not finished:  # the consumer went away: stop the worker, don't leak it
            cancel.cancel()
        job.result()
        engine._free()
    error = f"{type(errors[0]).__name__}: {errors[0]}" if errors else None
    samples: list[list[SampleResult]] = []
    for p, lead in enumerate(leads):
        group = []
        for j in range(n):
            row = processor.rows[p * n + j]
            sample = engine._sample(j, row, thinking, started, cancel.cancelled, error, lead=lead)
            group.append(sample)
        samples.append(group)
    yield RolloutBatch(samples=samples, seconds=time.perf_counter() - started, error=error, reused_cache=bool(reused))


def _left_padded(tok: Any, texts: list[str], fallback_pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of ``texts`` padded on the left to one length, and their attention mask (0 = padding).

    Done by hand rather than through ``tokenizer(padding=True)`` so the shared tokenizer's padding side is
    never changed under another thread.
    """
    pad = tok.pad_token_id if tok.pad_token_id is not None else fallback_pad
    encoded = [tok.encode(text, add_special_tokens=False) for text in texts]
    width = max(len(ids) for ids in encoded)
    ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, row in enumerate(encoded):
        ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row) :] = 1
    return ids, mask


def _prefix_cache(model: Any, ids: torch.Tensor, mask: torch.Tensor) -> DynamicCache | None:
    """The KV cache of every position but the last (``generate`` feeds that one), or None if the model can't.

    Position ids follow ``generate``'s own rule for left padding (cumulative sum of the mask), so continuing
    from this cache gives the same logits as encoding the whole row inside ``generate``.
    """
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    cache = DynamicCache(config=model.config)
    try:
        model(
            input_ids=ids[:, :-1],
            attention_mask=mask[:, :-1],
            position_ids=positions[:, :-1],
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
    except (TypeError, ValueError, NotImplementedError):  # an architecture without this cache: encode per row
        return None
    return cache
