"""One sample's chain of requests on a server: the s1 phase loop of the remote engine (app.engine.remote).

1. thinking: ask for at most the remaining budget with ``stop`` = the close tag;
2. a stop (close tag or end-of-sequence) below ``min_thinking`` appends the continuation ("Wait") to
   the text and asks again, at most ``max_continuations`` times;
3. reaching the budget appends the close delimiter and the answer cue (stop reason ``budget_cut``);
   end-of-sequence while thinking appends them too, as in the local engine; a natural close tag
   appends only the delimiter;
4. answer: ask for at most ``max_answer_tokens`` (the cue counts as answer, as locally).

A sample continuing a stored trace (:class:`~app.domain.TracePrefix`) starts with the prefix text already in
``raw`` and its tokens already counted (app.engine.prefixes); each request re-sends prompt + everything so
far, so the server's prefix cache (vLLM, SGLang, llama.cpp) reuses the shared part.

Prompts are text by default: the server tokenises prompt + everything so far on each request, so a join the
loop forces (``\n</think>\n\n`` + cue, "Wait") may split into other tokens than the local engine forces. With
``token_prompts`` each request sends token ids built as the local engine builds them: prompt and prefix
encoded together, then each generated piece and each forced string encoded on its own (what the local
engine's forced ids are), for servers that take token-id prompts (vLLM, SGLang, llama.cpp).

Token counts: a phase that ran out of ``max_tokens`` used what ``usage`` says (never more than asked); one
that stopped is counted with the local tokenizer on the text kept (close tag and end-of-sequence excluded).
So thinking never exceeds the budget and equals it when min = max. Knows nothing about storage or UI.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.domain import GenerationSettings
from app.engine.events import CancelToken, SteerToken
from app.engine.remote_client import CompletionClient
from app.engine.remote_plan import PhasePlan
from app.engine.remote_tokens import TokenLog
from app.engine.rulebook import ANSWER, ANSWER_TEXT, DELIMITER, DONE, THINKING, THINKING_TEXT, SampleCounts

#: Offset between the seeds of the successive requests of one sample's chain.
SEED_STRIDE = 100_003
#: Alternatives asked per token (OpenAI completions ``logprobs``); servers without them ignore or refuse it.
LOGPROBS = 5


@dataclass
class SampleRun(SampleCounts):
    """One sample's chain of requests: what is committed (``raw``), what is streaming (``piece``), counts.

    ``raw`` starts with ``lead`` (a continued prefix); ``seed_index`` offsets the seed (sample ``i`` of a run,
    rollout ``j`` of a prefix).
    """

    index: int
    phase: str
    lead: str = ""
    seed_index: int = 0
    raw: str = ""
    piece: str = ""
    chunks: int = 0
    requests: int = 0
    error: str | None = None
    tokens: TokenLog | None = None
    #: The token ids of prompt + ``raw`` when the loop sends token-id prompts; None when it sends text.
    ids: list[int] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.raw = self.raw or self.lead

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


@dataclass
class PhaseLoop:
    """Runs :class:`SampleRun` chains for one generation: the shared prompt, plan, settings and signals."""

    client: CompletionClient
    tokenizer: Any
    stop_ids: list[int]
    prompt: str
    plan: PhasePlan
    settings: GenerationSettings
    cancel: CancelToken
    tick: Callable[[], None]
    steer: SteerToken | None = None
    token_prompts: bool = False

    def run(self, run: SampleRun) -> None:
        """Drive ``run`` through its phases (see the module docstring); errors propagate to the caller."""
        plan, budget, cancel = self.plan, self.plan.budget, self.cancel
        if self.token_prompts and run.ids is None:
            run.ids = self._encode(self.prompt + run.raw)  # prompt and prefix together, as the local engine
        if self.steer is not None:
            self.steer.attach(lambda: run.chunks)
        force_on = False  # below the minimum with no room for "Wait": ask for the rest without a stop
        while run.phase == THINKING and not cancel.cancelled:
            if self._steered():  # "Stop thinking now": close the thinking as a budget cut would, reason user_cut
                self.steer.mark_acted(run.chunks)  # type: ignore[union-attr]
                run.user_cut = True
                self._end_thinking(run, cue=True)
                break
            if budget.thinking_spent(run.thinking_tokens):
                run.cut = True
                self._end_thinking(run, cue=True)
                break
            remaining = budget.max_thinking - run.thinking_tokens
            reply = self._ask(run, remaining, None if force_on else [plan.close_tag])
            run.thinking_tokens += reply.used
            self._keep(run, THINKING_TEXT)
            if cancel.cancelled:
                return
            if self._steered():
                continue
            if reply.finish == "length" and not reply.closed and reply.used > 0:
                continue  # the budget is spent: the next pass cuts
            below_min = budget.wants_more_thinking(run.thinking_tokens, run.continuations)
            if below_min and not force_on and plan.continuation_tokens:
                if budget.continuation_fits(run.thinking_tokens, plan.continuation_tokens):
                    run.continuations += 1
                    run.thinking_tokens += plan.continuation_tokens
                    self._append(run, plan.continuation_text, THINKING_TEXT)
                else:
                    force_on = True
                continue
            # A close tag ends thinking as the model wrote it; end-of-sequence gets the cue, as locally.
            self._end_thinking(run, cue=not reply.closed)

        if cancel.cancelled:
            return
        if budget.answer_spent(run.answer_tokens):
            run.answer_capped = True
        else:
            reply = self._ask(run, budget.max_answer - run.answer_tokens, None)
            run.answer_tokens += reply.used
            self._keep(run, ANSWER_TEXT)
            if cancel.cancelled:
                return
            run.answer_capped = reply.finish == "length"
        run.done_at = time.perf_counter()
        run.commit(phase=DONE)

    # -- steps ------------------------------------------------------------------------------------

    def _steered(self) -> bool:
        return self.steer is not None and self.steer.stop_requested

    def _keep(self, run: SampleRun, label: str) -> None:
        if run.tokens is not None:
            run.tokens.keep(run.piece, label)
        self._extend_ids(run, run.piece)
        run.commit()

    def _append(self, run: SampleRun, text: str, label: str, phase: str | None = None) -> None:
        if run.tokens is not None:
            run.tokens.forced(text, label)
        self._extend_ids(run, text)
        run.commit(text, phase=phase)

    def _extend_ids(self, run: SampleRun, *texts: str) -> None:
        """Each piece on its own, like the local engine's forced ids (``BudgetPlan``'s ``enc``)."""
        if run.ids is not None:
            for text in texts:
                run.ids.extend(self._encode(text))

    def _end_thinking(self, run: SampleRun, *, cue: bool) -> None:
        run.thinking_done_at = time.perf_counter()
        plan = self.plan
        if run.tokens is not None:
            run.tokens.forced(plan.end_text, DELIMITER)
            if cue:
                run.tokens.forced(plan.cue_text, ANSWER_TEXT)
        if cue:
            run.answer_tokens += plan.cue_tokens
        self._extend_ids(run, plan.end_text, plan.cue_text if cue else "")
        run.commit(plan.end_text + (plan.cue_text if cue else ""), phase=ANSWER)

    def _ask(self, run: SampleRun, max_tokens: int, stop: list[str] | None) -> _Reply:
        settings = self.settings
        prompt: str | list[int] = list(run.ids) if run.ids is not None else self.prompt + run.raw
        body: dict[str, Any] = {"prompt": prompt, "max_tokens": max_tokens}
        body["temperature"] = settings.temperature
        if settings.temperature > 0:
            body["top_p"] = settings.top_p
            body["generation_config"] = self._sampling_config(max_tokens)
        if settings.seed is not None:
            body["seed"] = settings.seed + run.seed_index + run.requests * SEED_STRIDE
        if stop:
            body["stop"] = stop
        if run.tokens is not None:
            body["logprobs"] = LOGPROBS
        run.requests += 1
        cancel = self.cancel
        if run.phase == THINKING:
            stop_when: Callable[[], bool] = lambda: cancel.cancelled or self._steered()  # noqa: E731
        else:
            stop_when = lambda: cancel.cancelled  # noqa: E731
        return self._request(run, body, max_tokens, self.plan.close_tag if stop else None, stop_when)

    def _sampling_config(self, max_tokens: int) -> str:
        """transformers serve samples only when the model's generation config says ``do_sample``, which the
        OpenAI fields can't set; its own ``generation_config`` field can (other servers ignore the field)."""
        config = {
            "do_sample": True,
            "temperature": self.settings.temperature,
            "top_p": self.settings.top_p,
            "top_k": None,
            "max_new_tokens": max_tokens,
            "eos_token_id": self.stop_ids,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        return json.dumps(config)

    def _request(
        self, run: SampleRun, body: dict[str, Any], max_tokens: int, close_tag: str | None, stop_when: Callable
    ) -> _Reply:
        """Stream one request into ``run.piece``; cut the piece at the close tag (some servers include it)."""
        finish, usage, closed = None, None, False
        for chunk in self.client.stream(body, stop_when=stop_when):
            if run.tokens is not None:
                run.tokens.add(chunk.text, chunk.logprobs)
            if chunk.text:
                with run.lock:
                    if run.first_token_at is None:
                        run.first_token_at = time.perf_counter()
                    run.piece += chunk.text
                    if close_tag and close_tag in run.piece:
                        run.piece = run.piece[: run.piece.index(close_tag)]
                        closed = True
                    run.chunks += 1
                self.tick()
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
        return len(self._encode(text))

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False)) if text else []
