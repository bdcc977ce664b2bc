"""The remote engine: budget forcing as phases of raw-prompt ``/v1/completions`` on an OpenAI-compatible server.

The s1 client loop. The prompt is built locally (the model's tokenizer and chat template, see
app.engine.formats), so a server's reasoning parser never sees a chat request and can't interfere:

1. thinking: ask for at most the remaining budget with ``stop`` = the close tag;
2. a stop (close tag or end-of-sequence) below ``min_thinking`` appends the continuation ("Wait") to
   the text and asks again, at most ``max_continuations`` times;
3. reaching the budget appends the close delimiter and the answer cue (stop reason ``budget_cut``);
   end-of-sequence while thinking appends them too, as in the local engine; a natural close tag
   appends only the delimiter;
4. answer: ask for at most ``max_answer_tokens`` (the cue counts as answer, as locally).

Token counts: a phase that ran out of ``max_tokens`` used what ``usage`` says (never more than asked); one
that stopped is counted with the local tokenizer on the text kept (close tag and end-of-sequence excluded).
So thinking never exceeds the budget and equals it when min = max.

k samples are k concurrent request chains, sample ``i`` seeded ``seed + i`` (later requests of a chain offset
it). Cancel and "Stop thinking now" are checked between chunks and close the stream (the server aborts). A
failed request keeps what was streamed; the sample ends with stop reason ``error`` and a message naming the
server and the fix. Knows nothing about storage or UI.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from app.domain import GenerationResult, GenerationSettings, SampleResult, TracePrefix
from app.engine.budget import stop_token_ids
from app.engine.events import (
    AnswerDelta,
    CancelToken,
    Event,
    Finished,
    PhaseChange,
    Progress,
    SteerToken,
    ThinkingDelta,
)
from app.engine.formats import build_prompt
from app.engine.generation import split_text
from app.engine.loading import LoadedModel
from app.engine.remote_client import CompletionClient, RemoteError
from app.engine.remote_plan import PhasePlan

Messages = list[dict[str, str]]
THINKING, ANSWER, DONE = "thinking", "answer", "done"
#: Generations that may run at once on a server (each of up to k concurrent requests); the server batches them.
REMOTE_CONCURRENCY = 16
#: Offset between the seeds of the successive requests of one sample's chain.
SEED_STRIDE = 100_003
_TICK, _END = object(), object()


@dataclass
class SampleRun:
    """One sample's chain of requests: what is committed (``raw``), what is streaming (``piece``), counts."""

    index: int
    phase: str
    raw: str = ""
    piece: str = ""
    thinking_tokens: int = 0
    answer_tokens: int = 0
    continuations: int = 0
    cut: bool = False
    user_cut: bool = False
    answer_capped: bool = False
    chunks: int = 0
    requests: int = 0
    error: str | None = None
    first_token_at: float | None = None
    thinking_done_at: float | None = None
    done_at: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self) -> tuple[str, str]:
        with self.lock:
            return self.raw + self.piece, self.phase

    def commit(self, extra: str = "", phase: str | None = None) -> None:
        """Move the streamed piece (plus ``extra``) into ``raw``, atomically with a phase change."""
        with self.lock:
            self.raw += self.piece + extra
            self.piece = ""
            if phase is not None:
                self.phase = phase


@dataclass
class _Reply:
    """How one request ended."""

    finish: str | None  # "length", "stop", or None (cancelled / no finish chunk)
    used: int  # tokens this request added to the phase, per the module docstring's rule
    closed: bool  # the model wrote the close tag


class RemoteEngine:
    """Generate traces on an OpenAI-compatible server, with the local engine's budget semantics.

    ``loaded`` carries only the tokenizer and format (``loaded.model`` is None): prompts are built and
    tokens counted here; the weights live on the server.
    """

    concurrency = REMOTE_CONCURRENCY

    def __init__(self, loaded: LoadedModel, client: CompletionClient) -> None:
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.format = loaded.format
        self.client = client
        self.stop_ids = stop_token_ids(loaded.tokenizer)

    @property
    def url(self) -> str:
        return self.client.base_url

    def status(self) -> str | None:
        """None when the server answers and serves the model; otherwise the message saying what is wrong."""
        try:
            model = self.client.resolve_model()
            listed = self.client.models()
        except RemoteError as exc:
            return str(exc)
        if listed and model not in listed:
            return (
                f"The server at {self.url} does not list model {model!r} (it lists {', '.join(listed[:5])}). "
                "Pass --server-model with one of those."
            )
        return None

    # -- public API (app.engine.interface.GenerationEngine) ---------------------------------------

    def generate(
        self, messages: Messages | str, settings: GenerationSettings, cancel: CancelToken | None = None
    ) -> GenerationResult:
        result = None
        for event in self.stream(messages, settings, cancel, deltas=False):
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
        prefix: TracePrefix | None = None,
        steer: SteerToken | None = None,
    ) -> Iterator[Event]:
        """Same events as the local engine: deltas and phase changes, progress, then :class:`Finished`.

        ``steer`` is "Stop thinking now": checked between streamed chunks, it closes the thinking request
        and appends the close tag and cue (stop reason ``user_cut``). Continuing a stored ``prefix`` is not
        supported on a server yet.
        """
        if prefix is not None:
            raise ValueError(
                "Continuing a trace from a prefix runs on the local engine only for now; start tracelab without "
                "--server to branch from a trace."
            )
        settings.validate()
        msgs: Messages = [{"role": "user", "content": messages}] if isinstance(messages, str) else list(messages)
        cancel = cancel or CancelToken()
        thinking = settings.thinking
        prompt = build_prompt(self.format, self.tokenizer, msgs, thinking)
        plan = PhasePlan.build(self.tokenizer, settings, self.format.close_tag)
        k = settings.samples
        runs = [SampleRun(i, THINKING if thinking else ANSWER) for i in range(k)]
        updates: queue.Queue = queue.Queue()
        started = time.perf_counter()

        def work(run: SampleRun) -> None:
            try:
                self._run_sample(run, prompt, plan, settings, cancel, lambda: updates.put(_TICK), steer)
            except RemoteError as exc:
                run.error = str(exc)
            except Exception as exc:  # reported as stop reason "error", never lost
                run.error = f"Generation on {self.url} failed: {exc}"
            finally:
                run.commit()
                updates.put(_END)

        pool = ThreadPoolExecutor(max_workers=k, thread_name_prefix="tracelab-remote")
        jobs = [pool.submit(work, run) for run in runs]
        shown = [("", "", run.phase) for run in runs]
        ended = 0
        try:
            while ended < k:
                if updates.get() is _END:
                    ended += 1
                if updates.empty():  # coalesce: render only the newest state
                    if deltas:
                        yield from self._deltas(runs, shown, thinking)
                    yield Progress(tokens=max(r.chunks for r in runs), done=sum(r.phase == DONE for r in runs), total=k)
        finally:
            if ended < k:  # the consumer went away: close the streams, don't leak the workers
                cancel.cancel()
            for job in jobs:
                job.result()
            pool.shutdown(wait=True)
        if deltas:
            yield from self._deltas(runs, shown, thinking, final=True)
        samples = [self._sample(run, thinking, started, cancel.cancelled) for run in runs]
        errors = [run.error for run in runs if run.error]
        yield Finished(
            GenerationResult(
                model=self.loaded.name,
                format=self.format.name,
                settings=settings,
                samples=samples,
                prompt=msgs[-1]["content"],
                messages=msgs,
                seconds=time.perf_counter() - started,
                error=errors[0] if errors else None,
            )
        )

    # -- the phase loop (one sample) --------------------------------------------------------------

    def _run_sample(
        self,
        run: SampleRun,
        prompt: str,
        plan: PhasePlan,
        settings: GenerationSettings,
        cancel: CancelToken,
        tick: Callable[[], None],
        steer: SteerToken | None = None,
    ) -> None:
        seed = None if settings.seed is None else settings.seed + run.index
        if steer is not None:
            steer.attach(lambda: run.chunks)

        def steered() -> bool:
            return steer is not None and steer.stop_requested

        def ask(max_tokens: int, stop: list[str] | None) -> _Reply:
            body: dict[str, Any] = {"prompt": prompt + run.raw, "max_tokens": max_tokens}
            body["temperature"] = settings.temperature
            if settings.temperature > 0:
                body["top_p"] = settings.top_p
                body["generation_config"] = self._sampling_config(settings, max_tokens)
            if seed is not None:
                body["seed"] = seed + run.requests * SEED_STRIDE
            if stop:
                body["stop"] = stop
            run.requests += 1
            thinking_phase = run.phase == THINKING
            stop_when = (lambda: cancel.cancelled or steered()) if thinking_phase else (lambda: cancel.cancelled)
            return self._request(run, body, max_tokens, plan.close_tag if stop else None, stop_when, tick)

        # 1-3. Thinking, in as many requests as stops and continuations need.
        force_on = False  # below the minimum with no room for "Wait": ask for the rest without a stop
        while run.phase == THINKING and not cancel.cancelled:
            if steered():  # "Stop thinking now": close the thinking as a budget cut would, reason user_cut
                steer.mark_acted(run.chunks)  # type: ignore[union-attr]
                run.user_cut = True
                self._end_thinking(run, plan, cue=True)
                break
            remaining = plan.max_thinking - run.thinking_tokens
            if remaining <= 0:
                run.cut = True
                self._end_thinking(run, plan, cue=True)
                break
            reply = ask(remaining, None if force_on else [plan.close_tag])
            run.thinking_tokens += reply.used
            run.commit()
            if cancel.cancelled:
                return
            if steered():
                continue
            if reply.finish == "length" and not reply.closed and reply.used > 0:
                continue  # the budget is spent: the next pass cuts
            below_min = run.thinking_tokens < plan.min_thinking and run.continuations < plan.max_continuations
            if below_min and not force_on and plan.continuation_tokens:
                if run.thinking_tokens + plan.continuation_tokens <= plan.max_thinking:
                    run.continuations += 1
                    run.thinking_tokens += plan.continuation_tokens
                    run.commit(plan.continuation_text)
                else:
                    force_on = True
                continue
            # A close tag ends thinking as the model wrote it; end-of-sequence gets the cue, as locally.
            self._end_thinking(run, plan, cue=not reply.closed)

        # 4. The answer.
        if cancel.cancelled:
            return
        room = plan.max_answer - run.answer_tokens
        if room <= 0:
            run.answer_capped = True
        else:
            reply = ask(room, None)
            run.answer_tokens += reply.used
            if cancel.cancelled:
                return
            run.answer_capped = reply.finish == "length"
        run.done_at = time.perf_counter()
        run.commit(phase=DONE)

    def _sampling_config(self, settings: GenerationSettings, max_tokens: int) -> str:
        """transformers serve samples only when the model's generation config says ``do_sample``, which the
        OpenAI fields can't set; its own ``generation_config`` field can (other servers ignore the field)."""
        config = {
            "do_sample": True,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "top_k": None,
            "max_new_tokens": max_tokens,
            "eos_token_id": self.stop_ids,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        return json.dumps(config)

    def _end_thinking(self, run: SampleRun, plan: PhasePlan, *, cue: bool) -> None:
        run.thinking_done_at = time.perf_counter()
        if cue:
            run.answer_tokens += plan.cue_tokens
        run.commit(plan.end_text + (plan.cue_text if cue else ""), phase=ANSWER)

    def _request(
        self,
        run: SampleRun,
        body: dict[str, Any],
        max_tokens: int,
        close_tag: str | None,
        stop_when: Callable[[], bool],
        tick: Callable[[], None],
    ) -> _Reply:
        """Stream one request into ``run.piece``; cut the piece at the close tag (some servers include it)."""
        finish, usage, closed = None, None, False
        for chunk in self.client.stream(body, stop_when=stop_when):
            if chunk.text:
                with run.lock:
                    if run.first_token_at is None:
                        run.first_token_at = time.perf_counter()
                    run.piece += chunk.text
                    if close_tag and close_tag in run.piece:
                        run.piece = run.piece[: run.piece.index(close_tag)]
                        closed = True
                    run.chunks += 1
                tick()
            if chunk.finish_reason:
                finish, usage = chunk.finish_reason, chunk.completion_tokens
                closed = closed or (close_tag is not None and chunk.stop_reason == close_tag)
            if closed:
                break  # servers that ignore ``stop`` would run on into the answer
        if finish == "length" and not closed:
            used = min(max_tokens, usage) if usage is not None else max_tokens
        else:
            used = min(max_tokens, self._count(run.piece))
        return _Reply(finish=finish, used=used, closed=closed)

    def _count(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False)) if text else 0

    # -- events and results -----------------------------------------------------------------------

    def _text(self, raw: str, thinking: bool, final: bool) -> tuple[str, str]:
        think, answer = split_text(raw, self.format.open_tag, self.format.close_tag, thinking, final)
        if not final and self.format.open_tag.startswith(think):  # "<thi": maybe a repeated open tag, wait
            think = ""
        if self.format.answer_open:
            answer = answer.replace(self.format.answer_open, "").replace(self.format.answer_close, "")
        return think, answer

    def _deltas(
        self, runs: list[SampleRun], shown: list[tuple[str, str, str]], thinking: bool, final: bool = False
    ) -> Iterator[Event]:
        for i, run in enumerate(runs):
            raw, phase = run.snapshot()
            think, answer = self._text(raw, thinking, final)
            old_think, old_answer, old_phase = shown[i]
            if len(think) > len(old_think) and think.startswith(old_think):
                yield ThinkingDelta(i, think[len(old_think) :])
                old_think = think
            if old_phase == THINKING and phase != THINKING:
                yield PhaseChange(i, ANSWER)
            if len(answer) > len(old_answer) and answer.startswith(old_answer):
                yield AnswerDelta(i, answer[len(old_answer) :])
                old_answer = answer
            if phase == DONE and old_phase != DONE:  # after the last answer text seen with it
                yield PhaseChange(i, DONE)
            shown[i] = (old_think, old_answer, phase)

    def _sample(self, run: SampleRun, thinking: bool, started: float, cancelled: bool) -> SampleResult:
        think, answer = self._text(run.raw, thinking, final=True)
        end = run.done_at or time.perf_counter()
        if run.error:
            reason = "error"
        elif run.phase != DONE and cancelled:
            reason = "cancelled"
        elif run.user_cut:
            reason = "user_cut"
        elif run.cut:
            reason = "budget_cut"
        elif run.answer_capped or run.phase != DONE:
            reason = "max_tokens"
        else:
            reason = "end"
        first = run.first_token_at
        decode_seconds = end - first if first else 0.0
        tokens = run.thinking_tokens + run.answer_tokens
        return SampleResult(
            index=run.index,
            raw_text=run.raw,
            thinking=think.strip(),
            answer=answer.strip(),
            thinking_tokens=run.thinking_tokens,
            answer_tokens=run.answer_tokens,
            stop_reason=reason,  # type: ignore[arg-type]
            continuations=run.continuations,
            seconds=end - started,
            time_to_first_token=(first - started) if first else None,
            thinking_seconds=(run.thinking_done_at - started) if run.thinking_done_at and thinking else None,
            tokens_per_second=(tokens / decode_seconds) if decode_seconds > 0 else 0.0,
            error=run.error,
        )
