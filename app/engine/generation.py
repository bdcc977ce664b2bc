"""The engine: one prompt -> k traces, streamed as events, under the thinking budget.

``Engine.stream`` runs ``model.generate`` in a worker thread with three hooks: the
:class:`~app.engine.budget.ThinkingBudgetProcessor` (budget forcing), a stopping criterion that
watches the :class:`~app.engine.events.CancelToken`, and a streamer that ticks after each decoding
step so the caller can turn the rows' tokens into thinking/answer deltas. ``k`` samples are one
batched generate over ``k`` copies of the prompt (identical rows: no padding). One generation runs
at a time (they queue on the model thread, see app.engine.torch_thread). Knows nothing about storage or UI.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from typing import Any

import torch
from transformers import LogitsProcessor, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from app.domain import GenerationResult, GenerationSettings, SampleResult, TracePrefix
from app.engine.budget import (
    DONE,
    BudgetPlan,
    RowStart,
    RowState,
    ThinkingBudgetProcessor,
    stop_token_ids,
)
from app.engine.confidence import SOURCE_GREEDY, SOURCE_SAMPLED, ConfidenceCapture, sampling_chain
from app.engine.events import (
    AnswerDelta,
    CancelToken,
    Event,
    Finished,
    PhaseChange,
    Progress,
    Snapshot,
    SteerToken,
    ThinkingDelta,
)
from app.engine.formats import build_prompt
from app.engine.loading import LoadedModel
from app.engine.pieces import alternative_texts, token_pieces
from app.engine.prefixes import prefix_start
from app.engine.sampling import Draw
from app.engine.torch_thread import submit_to_torch_thread

Messages = list[dict[str, str]]
_TICK, _END = object(), object()


class _Cancelled(StoppingCriteria):
    def __init__(self, token: CancelToken) -> None:
        self.token = token

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.token.cancelled, dtype=torch.bool, device=input_ids.device)


class _TickStreamer(BaseStreamer):
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


def split_text(text: str, open_tag: str, close_tag: str, starts_thinking: bool, final: bool) -> tuple[str, str]:
    """Split generated text into (thinking, answer) at ``close_tag``.

    While streaming (``final=False``) a trailing partial close tag is held back, so "</thi" never
    flashes into the visible thinking.
    """
    if not starts_thinking:
        return "", text
    head, sep, tail = text.partition(close_tag)
    if sep:
        return head.removeprefix(open_tag), tail
    if not final:
        for k in range(min(len(close_tag) - 1, len(head)), 0, -1):
            if head.endswith(close_tag[:k]):
                head = head[:-k]
                break
    return head.removeprefix(open_tag), ""


def decoding_kwargs(
    budget: LogitsProcessor, settings: GenerationSettings, device: torch.device, capture: LogitsProcessor | None = None
) -> dict[str, Any]:
    """``generate``'s decoding kwargs: the budget processor first, then sampling as ``settings`` asks.

    Greedy at temperature 0. On a CPU the engine draws itself (:mod:`app.engine.sampling`: no full-vocabulary
    sort or multinomial) and ``generate`` runs greedy on the one-hot row; elsewhere transformers samples.
    ``capture`` (the token lens) goes after the warpers, so it sees the distribution actually sampled from.
    Shared by a run and by branch rollouts (:mod:`app.engine.rollouts`), so both sample the same way.
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


class Engine:
    """Generate traces from a :class:`LoadedModel` under :class:`GenerationSettings`."""

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

    def prompt_tokens(self, messages: Messages, thinking: bool) -> int:
        """How many tokens ``messages`` take once rendered for generation (what :meth:`stream` will feed)."""
        prompt = build_prompt(self.format, self.tokenizer, list(messages), thinking)
        return len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def forced_tokens(self, settings: GenerationSettings) -> int:
        """Tokens a budget cut may force beyond the budget (close tag + answer cue), for the context check."""
        cue = self.tokenizer(settings.answer_cue or "", add_special_tokens=False)["input_ids"]
        close = self.tokenizer(self.format.close_tag, add_special_tokens=False)["input_ids"]
        return len(cue) + len(close) + 2

    def generate(
        self,
        messages: Messages | str,
        settings: GenerationSettings,
        cancel: CancelToken | None = None,
        *,
        prefix: TracePrefix | None = None,
    ) -> GenerationResult:
        """Run to completion and return the result (no deltas)."""
        result = None
        for event in self.stream(messages, settings, cancel, deltas=False, prefix=prefix):
            if isinstance(event, Finished):
                result = event.result
        assert result is not None
        return result

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
        msgs: Messages = [{"role": "user", "content": messages}] if isinstance(messages, str) else list(messages)
        cancel = cancel or CancelToken()
        thinking = settings.thinking
        lead, start = self.prefix_start(prefix, thinking)
        prompt = build_prompt(self.format, self.tokenizer, msgs, thinking) + lead
        max_think, min_think = settings.resolved_budget()
        if prefix is not None and prefix.fresh_budget:  # "Think longer": the budget counts new tokens only
            max_think, min_think = max_think + start.thinking_tokens, min_think + start.thinking_tokens
        plan = BudgetPlan.build(
            self.tokenizer,
            thinking=thinking,
            max_thinking=max_think,
            min_thinking=min_think,
            max_continuations=settings.max_continuations,
            max_answer=settings.max_answer_tokens,
            close_tag=self.format.close_tag,
            continuation=settings.continuation,
            answer_cue=settings.answer_cue,
            stop_ids=self.stop_ids,
        )
        k = settings.samples
        encoded = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        processor = ThinkingBudgetProcessor(
            plan, self.tokenizer, k, encoded["input_ids"].shape[1], starts=[start] * k, steer=steer
        )
        events: queue.Queue = queue.Queue()
        streamer = _TickStreamer(processor, events)
        forced = len(plan.end_ids) + len(plan.cue_ids) + 1
        max_new = (max_think + forced if thinking else 0) + settings.max_answer_tokens + 1
        sampling = settings.temperature > 0
        capture = ConfidenceCapture(k, lambda: processor.last_forced) if self.capture_tokens else None
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": max_new,
            "stopping_criteria": StoppingCriteriaList([_Cancelled(cancel)]),
            "streamer": streamer,
            "eos_token_id": self.stop_ids,
            "pad_token_id": self.tokenizer.pad_token_id,
            **decoding_kwargs(processor, settings, self.model.device, capture),
        }

        errors: list[BaseException] = []
        started = time.perf_counter()

        def work() -> None:
            # On the model thread, which also serialises generations (one worker): all tensor work here.
            try:
                with torch.inference_mode():
                    if settings.seed is not None:
                        torch.manual_seed(settings.seed)
                    device = self.model.device
                    output = self.model.generate(
                        input_ids=encoded["input_ids"].to(device).repeat(k, 1),
                        attention_mask=encoded["attention_mask"].to(device).repeat(k, 1),
                        **gen_kwargs,
                    )
                    processor.sync(output)
                    if capture is not None:
                        capture.finish(output)
                    del output
            except BaseException as exc:  # reported as stop_reason "error", never lost
                errors.append(exc)
            finally:
                events.put(_END)

        job = submit_to_torch_thread(work)
        shown = [("", "", row.phase) for row in processor.rows]
        last_snapshot = time.perf_counter()
        try:
            while True:
                item = events.get()
                if item is _END:
                    break
                if events.empty():  # coalesce: render only the newest state
                    if deltas:  # decoding k rows each step costs ~20% at k=8; skip it when unwanted
                        yield from self._deltas(processor, shown, thinking, lead=lead)
                    done = sum(row.phase == DONE for row in processor.rows)
                    yield Progress(tokens=processor.generated, done=done, total=k)
                    if snapshot_every is not None and time.perf_counter() - last_snapshot >= snapshot_every:
                        last_snapshot = time.perf_counter()
                        yield Snapshot(self._snapshot(processor, thinking, started, lead))
        finally:
            if not job.done():  # the consumer went away: stop the worker, don't leak it
                cancel.cancel()
            job.result()
            self._free()
        if deltas:
            yield from self._deltas(processor, shown, thinking, final=True, lead=lead)
        error = f"{type(errors[0]).__name__}: {errors[0]}" if errors else None
        samples = [
            self._sample(i, row, thinking, started, cancel.cancelled, error, lead=lead)
            for i, row in enumerate(processor.rows)
        ]
        if capture is not None and not errors:
            self._attach_tokens(samples, processor, capture, SOURCE_SAMPLED if sampling else SOURCE_GREEDY)
            self.last_capture_seconds = capture.seconds  # read by bench/engine_bench.py
        yield Finished(
            GenerationResult(
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
        )

    # -- helpers ----------------------------------------------------------------------------------

    def _snapshot(
        self, processor: ThinkingBudgetProcessor, thinking: bool, started: float, lead: str = ""
    ) -> list[SampleResult]:
        now = time.perf_counter()
        samples = []
        for i, ((ids, _phase), row) in enumerate(zip(processor.snapshot(), processor.rows, strict=True)):
            raw, think, answer = self._text(ids, thinking, final=False, lead=lead)
            samples.append(
                SampleResult(
                    index=i,
                    raw_text=raw,
                    thinking=think.strip(),
                    answer=answer.strip(),
                    thinking_tokens=row.thinking_tokens,
                    answer_tokens=row.answer_tokens,
                    stop_reason="cancelled",
                    continuations=row.continuations,
                    seconds=now - started,
                )
            )
        return samples

    def prefix_start(self, prefix: TracePrefix | None, thinking: bool) -> tuple[str, RowStart]:
        """The text a prefix appends to the prompt, and the row state it starts from (app.engine.prefixes)."""
        return prefix_start(self.tokenizer, self.format, prefix, thinking)

    def _text(self, ids: list[int], thinking: bool, final: bool, lead: str = "") -> tuple[str, str, str]:
        raw = lead + self.tokenizer.decode(ids, skip_special_tokens=False)
        think, answer = split_text(raw, self.format.open_tag, self.format.close_tag, thinking, final)
        if self.format.answer_open:
            answer = answer.replace(self.format.answer_open, "").replace(self.format.answer_close, "")
        return raw, think, answer

    def _deltas(
        self,
        processor: ThinkingBudgetProcessor,
        shown: list[tuple[str, str, str]],
        thinking: bool,
        final: bool = False,
        lead: str = "",
    ) -> Iterator[Event]:
        for i, (ids, phase) in enumerate(processor.snapshot()):
            _, think, answer = self._text(ids, thinking, final, lead)
            if not final:  # hold back a multi-byte character still being generated
                think, answer = think.rstrip("\ufffd"), answer.rstrip("\ufffd")
            old_think, old_answer, old_phase = shown[i]
            if len(think) > len(old_think) and think.startswith(old_think):
                yield ThinkingDelta(i, think[len(old_think) :])
                old_think = think
            if phase != old_phase:
                yield PhaseChange(i, phase)
            if len(answer) > len(old_answer) and answer.startswith(old_answer):
                yield AnswerDelta(i, answer[len(old_answer) :])
                old_answer = answer
            shown[i] = (old_think, old_answer, phase)

    def _sample(
        self,
        index: int,
        row: RowState,
        thinking: bool,
        started: float,
        cancelled: bool,
        error: str | None,
        lead: str = "",
    ) -> SampleResult:
        raw, think, answer = self._text(row.ids, thinking, final=True, lead=lead)
        end = row.done_at or time.perf_counter()
        if error:
            reason = "error"
        elif row.phase != DONE and cancelled:
            reason = "cancelled"
        elif row.user_cut:
            reason = "user_cut"
        elif row.cut:
            reason = "budget_cut"
        elif row.answer_capped or row.phase != DONE:
            reason = "max_tokens"
        else:
            reason = "end"
        seconds = end - started
        first = row.first_token_at
        decode_seconds = end - first if first else 0.0
        return SampleResult(
            index=index,
            raw_text=raw,
            thinking=think.strip(),
            answer=answer.strip(),
            thinking_tokens=row.thinking_tokens,
            answer_tokens=row.answer_tokens,
            stop_reason=reason,  # type: ignore[arg-type]
            continuations=row.continuations,
            seconds=seconds,
            time_to_first_token=(first - started) if first else None,
            thinking_seconds=(row.thinking_done_at - started) if row.thinking_done_at and thinking else None,
            tokens_per_second=(len(row.ids) / decode_seconds) if decode_seconds > 0 else 0.0,
            error=error,
        )

    def _attach_tokens(
        self,
        samples: list[SampleResult],
        processor: ThinkingBudgetProcessor,
        capture: ConfidenceCapture,
        source: str,
    ) -> None:
        traces = capture.traces([(row.ids, row.labels) for row in processor.rows], source)
        for sample, trace in zip(samples, traces, strict=True):
            trace.pieces = token_pieces(self.tokenizer, trace.token_ids)
            trace.vocab = alternative_texts(self.tokenizer, trace.top_ids)
            sample.tokens = trace

    def _free(self) -> None:
        """After a run: hand the GPU's cached blocks back to the driver. No ``gc.collect()``: a run's tensors
        (KV cache included) are freed by reference counting when it ends (tested), and a full collection of
        the app's ~465k objects cost 0.15-0.2 s at the end of every run."""
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
