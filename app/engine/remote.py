"""The remote engine: budget forcing as phases of raw-prompt ``/v1/completions`` on an OpenAI-compatible server.

The s1 client loop (app.engine.remote_phases runs one sample's chain of requests). The prompt is built locally
(the model's tokenizer and chat template, see app.engine.reasoning_formats), so a server's reasoning parser never sees a
chat request and can't interfere. Continuing a stored trace (``prefix``: branching, "Think longer") re-sends the
prompt plus the prefix text; the server's prefix cache gives the reuse. :meth:`RemoteEngine.stream_rollouts` runs
N rollouts of several prefixes as concurrent requests (a RolloutRequest, checked on construction).
The budget rules are the rulebook's (app.engine.rulebook), as on the local engine. Imports nothing torch-side.

k samples are k concurrent request chains, sample ``i`` seeded ``seed + i`` (later requests of a chain offset
it). Cancel and "Stop thinking now" are checked between chunks and close the stream (vLLM, SGLang, llama.cpp
and transformers serve then stop generating). A failed request keeps what was streamed; the sample ends with
stop reason ``error`` and a message naming the server and the fix. Token data comes from the server's
``logprobs`` where it sends them (app.engine.remote_tokens). Knows nothing about storage or UI.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from app.domain import GenerationSettings, Messages, SampleResult
from app.engine.events import (
    AnswerDelta,
    CancelToken,
    EngineStatus,
    Event,
    Finished,
    PhaseChange,
    Progress,
    RolloutBatch,
    RolloutRequest,
    Snapshot,
    SteerToken,
    ThinkingDelta,
)
from app.engine.interface import GenerationEngine, StreamRequest
from app.engine.model_source import LoadedModel
from app.engine.remote_client import MAX_CONNECTIONS, CompletionClient, RemoteError
from app.engine.remote_phases import PhaseLoop, SampleRun
from app.engine.remote_plan import PhasePlan
from app.engine.remote_tokens import TokenLog
from app.engine.rulebook import ANSWER, DONE, THINKING, RowStart
from app.engine.special_tokens import stop_token_ids
from app.engine.trace_text import Shown, sample_result, visible_text

#: Generations that may run at once on a server (each of up to k concurrent requests); the server batches them.
REMOTE_CONCURRENCY = 16
_TICK, _END = object(), object()


def _noop() -> None:
    return None


class RemoteEngine(GenerationEngine):
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

    @property
    def context_length(self) -> int | None:
        """The server doesn't say: a request is checked against ``--max-new-tokens`` only."""
        return None

    def status(self) -> EngineStatus:
        """The server and its model; ``error`` None when the server answers and serves the model, else what is wrong."""
        return EngineStatus(server=self.url, server_model=self.client.model, error=self._problem())

    def _problem(self) -> str | None:
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

    def run(self, request: StreamRequest) -> Iterator[Event]:
        """k samples as k concurrent request chains (app.engine.interface: ``stream``). "Stop thinking now" is
        checked between streamed chunks: it closes the thinking request and appends the close tag and cue."""
        settings, cancel = request.settings, request.cancel
        runs = [self._new_run(i, i, request.lead, request.start) for i in range(settings.samples)]
        started = time.perf_counter()
        loop = self._loop(request.messages, settings, cancel, extra=request.extra_thinking, steer=request.steer)
        drive = self._drive(runs, loop, len(runs), request.deltas, settings.thinking, every=request.snapshot_every)
        yield from drive
        samples = [self._sample(run, settings.thinking, started, cancel.cancelled) for run in runs]
        errors = [run.error for run in runs if run.error]
        yield Finished(self.result(request, samples, time.perf_counter() - started, errors[0] if errors else None))

    def run_rollouts(self, request: RolloutRequest, cancel: CancelToken) -> Iterator[Progress | RolloutBatch]:
        """N continuations of each prefix as concurrent requests (at most the client's connection pool at once);
        ``reuse_cache`` is the server's business (its prefix cache reuses the shared part of every request)."""
        settings, n, thinking = request.settings, request.n, request.settings.thinking
        starts = [self.prefix_start(p, thinking) for p in request.prefixes]
        runs = [self._new_run(j, j, lead, start) for lead, start in starts for j in range(n)]
        started = time.perf_counter()
        loop = self._loop(request.messages, settings, cancel)
        yield from self._drive(runs, loop, min(len(runs), MAX_CONNECTIONS), False, thinking, summed=True)
        samples = [self._sample(run, thinking, started, cancel.cancelled) for run in runs]
        groups = [samples[p * n : (p + 1) * n] for p in range(len(request.prefixes))]
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
        prompt = self.prompt(msgs, settings.thinking)
        plan = PhasePlan.build(self.tokenizer, settings, self.format.close_tag, extra=extra)
        return PhaseLoop(
            self.client, self.tokenizer, self.stop_ids, prompt, plan, settings, cancel, _noop, steer,
            token_prompts=self.token_prompts,
        )  # fmt: skip

    def _drive(
        self,
        runs: list[SampleRun],
        loop: PhaseLoop,
        workers: int,
        deltas: bool,
        thinking: bool,
        summed: bool = False,
        every: float | None = None,
    ) -> Iterator[Event]:
        """Run every chain on a pool of ``workers`` threads; yield deltas (optional) and progress as they stream.

        Progress counts the longest chain's chunks (one generation's k samples), or all chunks with ``summed``;
        with ``every`` (seconds), a :class:`Snapshot` of every chain at most that often."""
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
        shown: Shown = [("", "", run.phase) for run in runs]
        ended = 0
        started = last_snapshot = time.perf_counter()
        try:
            while ended < total:
                if updates.get() is _END:
                    ended += 1
                if updates.empty():  # coalesce: render only the newest state
                    if deltas:
                        yield from self._deltas(runs, shown, thinking)
                    tokens = (sum if summed else max)(r.chunks for r in runs)
                    yield Progress(tokens=tokens, done=sum(r.phase == DONE for r in runs), total=total)
                    if every is not None and time.perf_counter() - last_snapshot >= every:
                        last_snapshot = time.perf_counter()
                        yield Snapshot([self._snapshot(run, thinking, started) for run in runs])
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
        return visible_text(self.format, raw, thinking, final, hold_open_tag=True)

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

    def _snapshot(self, run: SampleRun, thinking: bool, started: float) -> SampleResult:
        """A chain's text and counts so far (stop reason not final: ``cancelled``), for a crash-safe save."""
        raw, _phase = run.snapshot()
        text = self._text(raw, thinking, final=False)
        return sample_result(run.index, raw, text, run, stop_reason="cancelled", seconds=time.perf_counter() - started)

    def _sample(self, run: SampleRun, thinking: bool, started: float, cancelled: bool) -> SampleResult:
        text = self._text(run.raw, thinking, final=True)
        reason = run.stop_reason(run.phase, error=run.error, cancelled=cancelled)
        tokens = run.tokens.trace() if run.tokens is not None and not run.error else None
        timings = run.timings(started, thinking=thinking, tokens=run.thinking_tokens + run.answer_tokens)
        return sample_result(
            run.index, run.raw, text, run, stop_reason=reason, error=run.error, tokens=tokens, **timings
        )
