"""The local engine: one prompt -> k traces, or trace prefixes -> N rollouts each, under the thinking budget.

Both go through the one decode loop (app.engine.decode): a chat run is one prompt decoded as k copies (identical
rows: no padding), rollouts are a batch of left-padded prefixes decoded N times each, continuing from each
prefix's KV cache. This module builds the request (the prompt, the budget plan, the rows' starting states) and
turns the decoded rows into events and samples (app.engine.trace_text). One generation runs at a time (they
queue on the model thread, see app.engine.torch_thread). Knows nothing about storage or UI.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from app.domain import GenerationResult, GenerationSettings, Messages, SampleResult, TracePrefix, as_messages
from app.engine.base import EngineBase
from app.engine.budget import BudgetPlan
from app.engine.confidence import SOURCE_GREEDY, SOURCE_SAMPLED
from app.engine.decode import DecodeBatch, Decoded, Decoder, progress
from app.engine.events import (
    CancelToken,
    EngineStatus,
    Event,
    Finished,
    Progress,
    RolloutBatch,
    Snapshot,
    SteerToken,
)
from app.engine.loading import LoadedModel
from app.engine.special_tokens import stop_token_ids
from app.engine.trace_text import RowText, Shown


class Engine(EngineBase):
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

    # -- public API -------------------------------------------------------------------------------

    @property
    def context_length(self) -> int | None:
        """The most tokens (prompt + generated) the model attends to, from its config; None if it doesn't say."""
        config = getattr(self.model, "config", None)
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def status(self) -> EngineStatus:
        """In process: no server, always ready."""
        return EngineStatus()

    def stream(
        self,
        messages: Messages | str,
        settings: GenerationSettings,
        cancel: CancelToken | None = None,
        *,
        deltas: bool = True,
        snapshot_every: float | None = None,
        prefix: TracePrefix | None = None,
        steer: SteerToken | None = None,
    ) -> Iterator[Event]:
        """Yield progress (and, with ``deltas``, text deltas and phase changes); always end with :class:`Finished`.

        ``snapshot_every`` (seconds): also yield a :class:`Snapshot` of every sample at most that often, for
        saving the text so far while the run goes on.
        ``prefix`` continues a trace from part-way (see :class:`~app.domain.TracePrefix`): the samples'
        thinking and answer include the prefix, and so do their token counts. ``steer`` lets the caller
        stop the thinking early ("Stop thinking now", stop reason ``user_cut``).
        """
        msgs = as_messages(messages)
        cancel = cancel or CancelToken()
        lead, start = self.prefix_start(prefix, settings.thinking)
        extra = start.thinking_tokens if prefix is not None and prefix.fresh_budget else 0  # "Think longer"
        plan = self._plan(settings, extra)
        text = RowText(self.tokenizer, self.format, settings.thinking)
        batch = DecodeBatch(
            [self.prompt(msgs, settings.thinking) + lead], settings.samples, [start], capture=self.capture_tokens,
            steer=steer,
        )  # fmt: skip
        shown: Shown = [("", "", start.phase)] * settings.samples
        last_snapshot = [time.perf_counter()]

        def on_tick(now: Decoded) -> Iterator[Event]:
            if deltas:  # decoding k rows each step costs ~20% at k=8; skip it when unwanted
                yield from text.deltas(now.processor.snapshot(), shown, lead=lead)
            yield progress(now.processor)
            if snapshot_every is not None and time.perf_counter() - last_snapshot[0] >= snapshot_every:
                last_snapshot[0] = time.perf_counter()
                yield Snapshot(text.snapshot(now.processor.snapshot(), now.processor.rows, now.started, lead))

        decoded = yield from self.decoder.run(plan, batch, settings, cancel, on_tick)
        rows = decoded.processor.rows
        if deltas:
            yield from text.deltas(decoded.processor.snapshot(), shown, final=True, lead=lead)
        error = decoded.error
        samples = [text.sample(i, row, decoded.started, cancel.cancelled, error, lead) for i, row in enumerate(rows)]
        if decoded.capture is not None and not decoded.errors:
            source = SOURCE_SAMPLED if settings.temperature > 0 else SOURCE_GREEDY
            text.attach_tokens(samples, rows, decoded.capture, source)
            self.last_capture_seconds = decoded.capture.seconds  # read by bench/engine_bench.py
        yield Finished(self._result(msgs, settings, samples, decoded.started, decoded.error))

    def stream_rollouts(
        self,
        messages: Messages | str,
        prefixes: Sequence[TracePrefix],
        settings: GenerationSettings,
        n: int,
        cancel: CancelToken | None = None,
        *,
        reuse_cache: bool = True,
    ) -> Iterator[Progress | RolloutBatch]:
        """N continuations of each prefix as one batched generate (app.engine.rollouts says the rules).

        The prompt-plus-prefix is encoded ONCE per prefix, its KV cache repeated to N rows (``reuse_cache``): the
        outputs are identical to encoding every row (tests pin that)."""
        msgs = as_messages(messages)
        cancel = cancel or CancelToken()
        thinking = settings.thinking
        leads, starts = zip(*(self.prefix_start(p, thinking) for p in prefixes), strict=True)
        prompt = self.prompt(msgs, thinking)
        batch = DecodeBatch([prompt + lead for lead in leads], n, starts, reuse_cache=reuse_cache)
        decoded = yield from self.decoder.run(
            self._plan(settings), batch, settings, cancel, lambda now: [progress(now.processor)]
        )
        text, rows = RowText(self.tokenizer, self.format, thinking), decoded.processor.rows
        samples = [
            [text.sample(j, rows[p * n + j], decoded.started, cancel.cancelled, decoded.error, lead) for j in range(n)]
            for p, lead in enumerate(leads)
        ]
        seconds = time.perf_counter() - decoded.started
        yield RolloutBatch(samples, seconds, error=decoded.error, reused_cache=decoded.reused_cache)

    # -- helpers ----------------------------------------------------------------------------------

    def _plan(self, settings: GenerationSettings, extra_thinking: int = 0) -> BudgetPlan:
        return BudgetPlan.for_settings(self.tokenizer, settings, self.format.close_tag, self.stop_ids, extra_thinking)

    def _result(
        self,
        msgs: Messages,
        settings: GenerationSettings,
        samples: list[SampleResult],
        started: float,
        error: str | None,
    ) -> GenerationResult:
        return GenerationResult(
            model=self.loaded.name,
            format=self.format.name,
            settings=settings,
            samples=samples,
            prompt=msgs[-1]["content"],
            messages=msgs,
            seconds=time.perf_counter() - started,
            error=error,
            precision=self.loaded.precision,
        )
