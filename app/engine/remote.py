"""The remote engine: budget forcing as phases of raw-prompt ``/v1/completions`` on an OpenAI-compatible server.

The s1 client loop (app.engine.remote_phases runs one sample's chain of requests). The prompt is built locally
(the model's tokenizer and chat template, see app.engine.formats), so a server's reasoning parser never sees a
chat request and can't interfere. Continuing a stored trace (``prefix``: branching, "Think longer") re-sends the
prompt plus the prefix text; the server's prefix cache gives the reuse. :meth:`RemoteEngine.stream_rollouts` runs
N rollouts of several prefixes as concurrent requests (app.engine.rollouts dispatches to it).

k samples are k concurrent request chains, sample ``i`` seeded ``seed + i`` (later requests of a chain offset
it). Cancel and "Stop thinking now" are checked between chunks and close the stream (vLLM, SGLang, llama.cpp
and transformers serve then stop generating). A failed request keeps what was streamed; the sample ends with
stop reason ``error`` and a message naming the server and the fix. Token data comes from the server's
``logprobs`` where it sends them (app.engine.remote_tokens). Knows nothing about storage or UI.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from app.domain import GenerationResult, GenerationSettings, SampleResult, TracePrefix
from app.engine.budget import RowStart, stop_token_ids
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
from app.engine.prefixes import prefix_start
from app.engine.remote_client import MAX_CONNECTIONS, CompletionClient, RemoteError
from app.engine.remote_phases import ANSWER, DONE, THINKING, PhaseLoop, SampleRun
from app.engine.remote_plan import PhasePlan
from app.engine.remote_tokens import TokenLog
from app.engine.rollouts import RolloutBatch

Messages = list[dict[str, str]]
#: Generations that may run at once on a server (each of up to k concurrent requests); the server batches them.
REMOTE_CONCURRENCY = 16
_TICK, _END = object(), object()


def _noop() -> None:
    return None


class RemoteEngine:
    """Generate traces on an OpenAI-compatible server, with the local engine's budget semantics.

    ``loaded`` carries only the tokenizer and format (``loaded.model`` is None): prompts are built and
    tokens counted here; the weights live on the server. ``capture_tokens`` asks the server for
    ``logprobs`` (token data for the lens, where the server sends them). ``token_prompts`` sends prompts as
    token ids built like the local engine's (see app.engine.remote_phases), for servers that take them.
    """

    concurrency = REMOTE_CONCURRENCY

    def __init__(
        self, loaded: LoadedModel, client: CompletionClient, *, capture_tokens: bool = True, token_prompts: bool = False
    ) -> None:
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.format = loaded.format
        self.client = client
        self.capture_tokens = capture_tokens
        self.token_prompts = token_prompts
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

    def prefix_start(self, prefix: TracePrefix | None, thinking: bool) -> tuple[str, RowStart]:
        """The text a prefix appends to the prompt, and the state a sample starts from (app.engine.prefixes)."""
        return prefix_start(self.tokenizer, self.format, prefix, thinking)

    # -- public API (app.engine.interface.GenerationEngine) ---------------------------------------

    def generate(
        self,
        messages: Messages | str,
        settings: GenerationSettings,
        cancel: CancelToken | None = None,
        *,
        prefix: TracePrefix | None = None,
    ) -> GenerationResult:
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
        prefix: TracePrefix | None = None,
        steer: SteerToken | None = None,
    ) -> Iterator[Event]:
        """Same events as the local engine: deltas and phase changes, progress, then :class:`Finished`.

        ``prefix`` continues a stored trace: the samples' text and token counts include it, and its thinking
        counts against the budget unless ``prefix.fresh_budget`` ("Think longer"). ``steer`` is "Stop thinking
        now": checked between streamed chunks, it closes the thinking request and appends the close tag and
        cue (stop reason ``user_cut``).
        """
        settings.validate()
        msgs: Messages = [{"role": "user", "content": messages}] if isinstance(messages, str) else list(messages)
        cancel = cancel or CancelToken()
        thinking = settings.thinking
        lead, start = self.prefix_start(prefix, thinking)
        extra = start.thinking_tokens if prefix is not None and prefix.fresh_budget else 0
        runs = [self._new_run(i, i, lead, start) for i in range(settings.samples)]
        started = time.perf_counter()
        loop = self._loop(msgs, settings, cancel, extra=extra, steer=steer)
        yield from self._drive(runs, loop, len(runs), deltas, thinking)
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

    def stream_rollouts(
        self,
        messages: Messages | str,
        prefixes: Sequence[TracePrefix],
        settings: GenerationSettings,
        n: int,
        cancel: CancelToken | None = None,
    ) -> Iterator[Progress | RolloutBatch]:
        """N continuations of each prefix as concurrent requests (at most the client's connection pool at once):
        :class:`Progress`, then one :class:`RolloutBatch` shaped as app.engine.rollouts' (``samples[p][j]``)."""
        msgs: Messages = [{"role": "user", "content": messages}] if isinstance(messages, str) else list(messages)
        cancel = cancel or CancelToken()
        thinking = settings.thinking
        starts = [self.prefix_start(p, thinking) for p in prefixes]
        runs = [self._new_run(j, j, lead, start) for lead, start in starts for j in range(n)]
        started = time.perf_counter()
        loop = self._loop(msgs, settings, cancel)
        yield from self._drive(runs, loop, min(len(runs), MAX_CONNECTIONS), False, thinking, summed=True)
        samples = [self._sample(run, thinking, started, cancel.cancelled) for run in runs]
        groups = [samples[p * n : (p + 1) * n] for p in range(len(prefixes))]
        error = next((s.error for s in samples if s.error), None)
        yield RolloutBatch(samples=groups, seconds=time.perf_counter() - started, error=error, reused_cache=False)

    # -- running the chains -----------------------------------------------------------------------

    def _new_run(self, index: int, seed_index: int, lead: str, start: RowStart) -> SampleRun:
        run = SampleRun(index, start.phase, lead=lead, seed_index=seed_index)
        run.thinking_tokens, run.answer_tokens = start.thinking_tokens, start.answer_tokens
        run.tokens = TokenLog(self.tokenizer) if self.capture_tokens else None
        return run

    def _loop(
        self,
        msgs: Messages,
        settings: GenerationSettings,
        cancel: CancelToken,
        *,
        extra: int = 0,
        steer: SteerToken | None = None,
    ) -> PhaseLoop:
        prompt = build_prompt(self.format, self.tokenizer, msgs, settings.thinking)
        plan = PhasePlan.build(self.tokenizer, settings, self.format.close_tag, extra=extra)
        return PhaseLoop(
            self.client, self.tokenizer, self.stop_ids, prompt, plan, settings, cancel, _noop, steer,
            token_prompts=self.token_prompts,
        )  # fmt: skip

    def _drive(
        self, runs: list[SampleRun], loop: PhaseLoop, workers: int, deltas: bool, thinking: bool, summed: bool = False
    ) -> Iterator[Event]:
        """Run every chain on a pool of ``workers`` threads; yield deltas (optional) and progress as they stream.

        Progress counts the longest chain's chunks (one generation's k samples), or all chunks with ``summed``."""
        updates: queue.Queue = queue.Queue()
        loop.tick = lambda: updates.put(_TICK)
        cancel = loop.cancel

        def work(run: SampleRun) -> None:
            try:
                if not cancel.cancelled:
                    loop.run(run)
            except RemoteError as exc:
                run.error = str(exc)
            except Exception as exc:  # reported as stop reason "error", never lost
                run.error = f"Generation on {self.url} failed: {exc}"
            finally:
                run.commit()
                updates.put(_END)

        total = len(runs)
        pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="tracelab-remote")
        jobs = [pool.submit(work, run) for run in runs]
        shown = [("", "", run.phase) for run in runs]
        ended = 0
        try:
            while ended < total:
                if updates.get() is _END:
                    ended += 1
                if updates.empty():  # coalesce: render only the newest state
                    if deltas:
                        yield from self._deltas(runs, shown, thinking)
                    tokens = (sum if summed else max)(r.chunks for r in runs)
                    yield Progress(tokens=tokens, done=sum(r.phase == DONE for r in runs), total=total)
        finally:
            if ended < total:  # the consumer went away: close the streams, don't leak the workers
                cancel.cancel()
            for job in jobs:
                job.result()
            pool.shutdown(wait=True)
        if deltas:
            yield from self._deltas(runs, shown, thinking, final=True)

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
            tokens=run.tokens.trace() if run.tokens is not None and not run.error else None,
        )
