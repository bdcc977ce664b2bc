"""The local engine: one prompt -> k traces, or trace prefixes -> N rollouts each, under the thinking budget.

Both go through the one decode loop (app.engine.decode): a chat run is one prompt decoded as k copies (identical
rows: no padding), rollouts are a batch of left-padded prefixes decoded N times each, continuing from each
prefix's KV cache. This module builds the request (the prompt, the budget plan, the rows' starting states) and
turns the decoded rows into events and samples (app.engine.trace_text). One generation runs at a time (they
queue on the model thread, see app.engine.torch_thread). Knows nothing about storage or UI.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from app.domain import GenerationSettings
from app.engine.budget import BudgetPlan
from app.engine.confidence import SOURCE_GREEDY, SOURCE_SAMPLED
from app.engine.decode import DecodeBatch, Decoded, Decoder, progress
from app.engine.events import (
    CancelToken,
    Event,
    Finished,
    Progress,
    RolloutBatch,
    RolloutRequest,
    Snapshot,
)
from app.engine.interface import GenerationEngine, StreamRequest
from app.engine.model_source import LoadedModel
from app.engine.special_tokens import stop_token_ids
from app.engine.trace_text import RowText, Shown


class Engine(GenerationEngine):
    """Generate traces from a :class:`LoadedModel` under :class:`GenerationSettings` (app.engine.interface)."""

    #: One generation at a time: they queue on the model thread (app.engine.interface.GenerationEngine).
    concurrency = 1

    def __init__(self, loaded: LoadedModel, *, capture_tokens: bool = True) -> None:
        self.loaded = loaded
        #: Record per-token probability, entropy and top alternatives (app.engine.confidence).
        self.capture_tokens = capture_tokens
        self.last_capture_seconds = 0.0
        self.tokenizer = loaded.tokenizer
        self.model = loaded.model
        self.format = loaded.format
        self.stop_ids = stop_token_ids(self.tokenizer, getattr(self.model, "generation_config", None))
        self.decoder = Decoder(self.model, self.tokenizer, self.stop_ids)

    @property
    def context_length(self) -> int | None:
        """The most tokens (prompt + generated) the model attends to, from its config; None if it doesn't say."""
        config = getattr(self.model, "config", None)
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def run(self, request: StreamRequest) -> Iterator[Event]:
        """k samples of one prompt: one batched generate over k identical rows (app.engine.interface: ``stream``)."""
        settings, cancel, lead, start = request.settings, request.cancel, request.lead, request.start
        text = RowText(self.tokenizer, self.format, settings.thinking)
        prompt = self.prompt(request.messages, settings.thinking) + lead
        batch = DecodeBatch([prompt], settings.samples, [start], capture=self.capture_tokens, steer=request.steer)
        shown: Shown = [("", "", start.phase)] * settings.samples
        last_snapshot = [time.perf_counter()]

        def on_tick(now: Decoded) -> Iterator[Event]:
            if request.deltas:  # decoding k rows each step costs ~20% at k=8; skip it when unwanted
                yield from text.deltas(now.processor.snapshot(), shown, lead=lead)
            yield progress(now.processor)
            every = request.snapshot_every
            if every is not None and time.perf_counter() - last_snapshot[0] >= every:
                last_snapshot[0] = time.perf_counter()
                yield Snapshot(text.snapshot(now.processor.snapshot(), now.processor.rows, now.started, lead))

        plan = self._plan(settings, request.extra_thinking)
        decoded = yield from self.decoder.run(plan, batch, settings, cancel, on_tick)
        rows, error = decoded.processor.rows, decoded.error
        if request.deltas:
            yield from text.deltas(decoded.processor.snapshot(), shown, final=True, lead=lead)
        samples = [text.sample(i, row, decoded.started, cancel.cancelled, error, lead) for i, row in enumerate(rows)]
        if decoded.capture is not None and not decoded.errors:
            source = SOURCE_SAMPLED if settings.temperature > 0 else SOURCE_GREEDY
            text.attach_tokens(samples, rows, decoded.capture, source)
            self.last_capture_seconds = decoded.capture.seconds  # read by bench/engine_bench.py
        seconds = time.perf_counter() - decoded.started
        yield Finished(self.result(request, samples, seconds, error, precision=self.loaded.precision))

    def run_rollouts(self, request: RolloutRequest, cancel: CancelToken) -> Iterator[Progress | RolloutBatch]:
        """N continuations of each prefix as ONE batched generate through the decode loop: the prompt-plus-prefix
        is encoded once per prefix and its KV cache repeated to N rows (``reuse_cache``); the outputs are
        identical to encoding every row (tests pin that)."""
        settings, n, thinking = request.settings, request.n, request.settings.thinking
        leads, starts = zip(*(self.prefix_start(p, thinking) for p in request.prefixes), strict=True)
        prompt = self.prompt(request.messages, thinking)
        batch = DecodeBatch([prompt + lead for lead in leads], n, starts, reuse_cache=request.reuse_cache)
        plan = self._plan(settings)
        decoded = yield from self.decoder.run(plan, batch, settings, cancel, lambda now: [progress(now.processor)])
        text, rows, error = RowText(self.tokenizer, self.format, thinking), decoded.processor.rows, decoded.error
        samples = [
            [text.sample(j, rows[p * n + j], decoded.started, cancel.cancelled, error, lead) for j in range(n)]
            for p, lead in enumerate(leads)
        ]
        seconds = time.perf_counter() - decoded.started
        yield RolloutBatch(samples, seconds, error=error, reused_cache=decoded.reused_cache)

    def _plan(self, settings: GenerationSettings, extra_thinking: int = 0) -> BudgetPlan:
        return BudgetPlan.for_settings(self.tokenizer, settings, self.format.close_tag, self.stop_ids, extra_thinking)
