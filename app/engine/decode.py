"""The one decode loop of the local engine: a batch of prompt rows through ``model.generate`` under the budget.

A chat run is one prompt decoded as k copies; branch rollouts are P trace prefixes, left-padded to one length,
decoded N times each (optionally continuing from each prefix's KV cache, so the prefill is paid once per prefix).
Both arrive here as a :class:`DecodeBatch`, and this module owns everything they share: the ``max_new_tokens``
arithmetic, ``generate``'s kwargs (sampling as app.engine.sampling and app.engine.confidence say), the worker on
the model thread (app.engine.torch_thread), the queue drain that wakes the consumer after each step (and cancels
the worker when the consumer goes away), and handing the GPU's cached blocks back at the end.

Three hooks steer ``generate``: the :class:`~app.engine.budget.ThinkingBudgetProcessor` (the budget rules), a
stopping criterion watching the :class:`~app.engine.events.CancelToken`, and a :class:`TickStreamer` that feeds
each step to the budget state and wakes the consumer. Knows nothing about text, events' content or storage: the
caller turns the rows into deltas and samples (app.engine.trace_text).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache, LogitsProcessor, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from app.domain import GenerationSettings
from app.engine.budget import BudgetPlan, RowStart, ThinkingBudgetProcessor
from app.engine.confidence import ConfidenceCapture, sampling_chain
from app.engine.events import CancelToken, Event, Progress, SteerToken
from app.engine.rulebook import DONE
from app.engine.sampling import Draw
from app.engine.torch_thread import submit_to_torch_thread

_TICK, _END = object(), object()


class StopOnCancel(StoppingCriteria):
    """Stops every row of ``generate`` once the :class:`CancelToken` is set."""

    def __init__(self, token: CancelToken) -> None:
        self.token = token

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.token.cancelled, dtype=torch.bool, device=input_ids.device)


class TickStreamer(BaseStreamer):
    """Feeds each step's tokens to the budget state and wakes the consumer."""

    def __init__(self, processor: ThinkingBudgetProcessor, events: queue.Queue) -> None:
        self.processor = processor
        self.events = events
        self.steps = -1  # generate() first hands over the prompt

    def put(self, value: torch.Tensor) -> None:
        self.steps += 1
        if self.steps == 0:
            return
        # On GPU, generate may stream one step late; the processor may have ingested it already.
        if self.processor.generated < self.steps:
            self.processor.ingest_step(value.reshape(-1).tolist())
        self.events.put(_TICK)

    def end(self) -> None:
        self.events.put(_TICK)


def decoding_kwargs(
    budget: LogitsProcessor, settings: GenerationSettings, device: torch.device, capture: LogitsProcessor | None = None
) -> dict[str, Any]:
    """``generate``'s decoding kwargs: the budget processor first, then sampling as ``settings`` asks.

    Greedy at temperature 0. On a CPU the engine draws itself (:mod:`app.engine.sampling`: no full-vocabulary
    sort or multinomial) and ``generate`` runs greedy on the one-hot row; elsewhere transformers samples.
    ``capture`` (the token lens) goes after the warpers, so it sees the distribution actually sampled from.
    """
    sampling = settings.temperature > 0
    kwargs: dict[str, Any] = {"do_sample": sampling, "top_k": None}
    if sampling:
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
    else:
        kwargs.update(temperature=None, top_p=None)
    draw = sampling and device.type == "cpu"
    chain: list[Any] = [budget]
    if capture is not None or draw:
        warpers, overrides = sampling_chain(settings.temperature if sampling else 0.0, settings.top_p, draw)
        chain += warpers
        kwargs.update(overrides)
    if capture is not None:
        chain.append(capture)
    if draw:
        chain.append(Draw())
    kwargs["logits_processor"] = chain
    return kwargs


@dataclass
class DecodeBatch:
    """What one ``generate`` decodes: each text (prompt + its prefix) ``copies`` times, row ``p * copies + j``.

    ``starts`` gives each text's starting state (one per text); ``reuse_cache`` encodes every text once and
    continues its copies from that KV cache; ``capture`` records token data (app.engine.confidence).
    """

    texts: Sequence[str]
    copies: int
    starts: Sequence[RowStart]
    reuse_cache: bool = False
    capture: bool = False
    steer: SteerToken | None = None


@dataclass
class Decoded:
    """A finished decode: every row's state, the token data if captured, and how it ended."""

    processor: ThinkingBudgetProcessor
    capture: ConfidenceCapture | None
    started: float
    errors: list[BaseException] = field(default_factory=list)
    reused_cache: bool = False

    @property
    def error(self) -> str | None:
        """The first error as "Type: message" (every sample then ends with stop reason ``error``), or None."""
        return f"{type(self.errors[0]).__name__}: {self.errors[0]}" if self.errors else None


def progress(processor: ThinkingBudgetProcessor) -> Progress:
    """How far the batch is: steps decoded, rows finished, rows in all."""
    done = sum(row.phase == DONE for row in processor.rows)
    return Progress(tokens=processor.generated, done=done, total=len(processor.rows))


class Decoder:
    """Runs :class:`DecodeBatch` es on one model. ``streamer_type`` is the step hook (bench/device_check swaps it)."""

    streamer_type: type[TickStreamer] = TickStreamer

    def __init__(self, model: Any, tokenizer: Any, stop_ids: list[int]) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.stop_ids = stop_ids

    def run(
        self,
        plan: BudgetPlan,
        batch: DecodeBatch,
        settings: GenerationSettings,
        cancel: CancelToken,
        on_tick: Callable[[Decoded], Iterable[Event]],
    ) -> Generator[Event, None, Decoded]:
        """Decode ``batch``; after each step (coalesced) yield what ``on_tick`` makes of it so far; return the end.

        If the consumer stops iterating, the worker is cancelled and awaited before this returns: never leaked.
        """
        input_ids, attention = left_padded(self.tokenizer, list(batch.texts), self.pad_id)
        rows = len(batch.texts) * batch.copies
        starts = [start for start in batch.starts for _ in range(batch.copies)]
        processor = ThinkingBudgetProcessor(
            plan, self.tokenizer, rows, input_ids.shape[1], starts=starts, steer=batch.steer
        )
        capture = ConfidenceCapture(rows, lambda: processor.last_forced) if batch.capture else None
        events: queue.Queue = queue.Queue()
        max_new = (plan.budget.max_thinking + plan.forced_tokens if plan.thinking else 0) + plan.budget.max_answer + 1
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": max_new,
            "stopping_criteria": StoppingCriteriaList([StopOnCancel(cancel)]),
            "streamer": self.streamer_type(processor, events),
            "eos_token_id": self.stop_ids,
            "pad_token_id": self.pad_id,
            **decoding_kwargs(processor, settings, self.model.device, capture),
        }
        decoded = Decoded(processor, capture, time.perf_counter())

        def work() -> None:  # on the model thread, which also serialises generations: all tensor work here
            try:
                self._generate(input_ids, attention, batch, settings.seed, gen_kwargs, decoded)
            except BaseException as exc:  # reported on every sample as stop_reason "error", never lost
                decoded.errors.append(exc)
            finally:
                events.put(_END)

        job = submit_to_torch_thread(work)
        try:
            while events.get() is not _END:
                if events.empty():  # coalesce: render only the newest state
                    yield from on_tick(decoded)
        finally:
            if not job.done():  # the consumer went away: stop the worker, don't leak it
                cancel.cancel()
            job.result()
            free_device_cache()
        return decoded

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else self.stop_ids[0]

    def _generate(
        self,
        input_ids: torch.Tensor,
        attention: torch.Tensor,
        batch: DecodeBatch,
        seed: int | None,
        gen_kwargs: dict[str, Any],
        decoded: Decoded,
    ) -> None:
        with torch.inference_mode():
            if seed is not None:
                torch.manual_seed(seed)
            device = self.model.device
            ids, mask = input_ids.to(device), attention.to(device)
            extra: dict[str, Any] = {}
            if batch.reuse_cache and ids.shape[1] > 1:
                cache = prefix_cache(self.model, ids, mask)
                if cache is not None:
                    cache.batch_repeat_interleave(batch.copies)
                    extra["cache"] = cache
                    decoded.reused_cache = True
            output = self.model.generate(
                input_ids=ids.repeat_interleave(batch.copies, dim=0),
                attention_mask=mask.repeat_interleave(batch.copies, dim=0),
                **gen_kwargs,
                **extra,
            )
            decoded.processor.sync(output)
            if decoded.capture is not None:
                decoded.capture.finish(output)
            del output, extra


def left_padded(tok: Any, texts: list[str], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of ``texts`` padded on the left to one length, and their attention mask (0 = padding).

    Done by hand rather than through ``tokenizer(padding=True)`` so the shared tokenizer's padding side is
    never changed under another thread.
    """
    encoded = [tok.encode(text, add_special_tokens=False) for text in texts]
    width = max(len(ids) for ids in encoded)
    ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, row in enumerate(encoded):
        ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row) :] = 1
    return ids, mask


def prefix_cache(model: Any, ids: torch.Tensor, mask: torch.Tensor) -> DynamicCache | None:
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


def free_device_cache() -> None:
    """After a run: hand the GPU's cached blocks back to the driver. No ``gc.collect()``: a run's tensors
    (KV cache included) are freed by reference counting when it ends (tested), and a full collection of
    the app's ~465k objects cost 0.15-0.2 s at the end of every run."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
