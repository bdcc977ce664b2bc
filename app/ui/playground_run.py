"""The Playground's runs: its handlers over :func:`app.services.runs.stream_run`, on the shared run loop.

Owns what is specific to the Playground and nothing else: its settings controls as :class:`GenerationSettings`
(:data:`CONTROLS`, :func:`playground_settings`), the chat's turns (:class:`Chat`, kept in ``gr.State``) and the
live view of one streaming answer. The cancel registry, the queue and the bracket of every run (register,
watch the client, unregister) are :class:`app.ui.running.ModelTab`; generation, saving and answer extraction
live in ``app.services``; the layout is ``app.ui.playground``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import gradio as gr

from app.domain import GenerationSettings, SampleResult
from app.engine.events import AnswerDelta, CancelToken, Finished, PhaseChange, Progress, SteerToken, ThinkingDelta
from app.services.chat import chat_context
from app.services.inputs import load_examples
from app.services.runs import Saved, run_json, stored_sample_ids, stream_run, with_saved_ids
from app.services.runtime import Runtime
from app.services.settings_input import CUSTOM, build_settings
from app.services.think_longer import stream_think_longer
from app.ui.caller import user_of
from app.ui.refusal import refusal
from app.ui.render import empty_sample, safe_text, stop_reason_words, trace_messages, user_message
from app.ui.running import CANCELLED_BEFORE_START, CANCELS, UPDATE_EVERY, CancelRegistry, ModelTab, user_error
from app.ui.saving import PENDING, SAVE_WAIT, SAVING, PendingSaves, follow, unsaved_warning

__all__ = ["CONTROLS", "NOTHING_RUNNING", "STOPPING", "Chat", "Playground", "Turn", "playground_settings"]

#: What Stop answers, and what the status line says from Stop until the run's last update.
STOPPING = "Stopping…"
NOTHING_RUNNING = "Nothing is running."

#: The Playground's settings controls (GenerationSettings field names), in the order the layout builds them
#: and its events (``generate``, ``think_longer``) take them.
CONTROLS: tuple[str, ...] = (
    "thinking", "effort", "max_thinking_tokens", "min_thinking_tokens", "continuation",
    "max_answer_tokens", "temperature", "top_p", "seed",
)  # fmt: skip
#: The controls that only count with a custom effort (they sit in the box it shows).
CUSTOM_ONLY = ("max_thinking_tokens", "min_thinking_tokens")

PlaygroundOutput = tuple[list[gr.ChatMessage], str, dict[str, Any] | None, "Chat"]


def playground_settings(values: Mapping[str, Any]) -> GenerationSettings:
    """The controls' values (by :data:`CONTROLS` name) as settings, built by the one settings builder; a
    ``gr.Error`` naming a bad field. The custom budget's numbers count only with ``effort="custom"``."""
    raw = {name: values.get(name) for name in CONTROLS}
    if str(raw["effort"] or "").lower() != CUSTOM:
        raw.update(dict.fromkeys(CUSTOM_ONLY))
    try:
        return build_settings(raw)
    except Exception as exc:
        raise user_error(exc) from None


# --- the chat -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    """One finished exchange: the prompt, the sample it produced (None if it failed first) and its run."""

    prompt: str
    sample: SampleResult | None
    settings: GenerationSettings
    run_id: int | None
    error: str | None = None
    unsaved: str | None = None  # why the trace shown is not in the database (a warning that stays with it)


@dataclass(frozen=True)
class Chat:
    """A playground conversation: immutable, so each event stores a new one in ``gr.State``."""

    turns: tuple[Turn, ...] = ()

    def add(self, turn: Turn) -> Chat:
        return replace(self, turns=(*self.turns, turn))

    def settle_last(self, run_id: int | None, unsaved: str | None) -> Chat:
        """The last turn's save finished in the background: its run id, or why it could not be saved."""
        if not self.turns:
            return self
        return replace(self, turns=(*self.turns[:-1], replace(self.turns[-1], run_id=run_id, unsaved=unsaved)))

    def context(self, prompt: str, *, keep_thinking: bool, open_tag: str, close_tag: str) -> list[dict[str, str]]:
        """Messages for the next generation (see :func:`app.services.chat.chat_context`)."""
        done = ((t.prompt, t.sample.thinking, t.sample.answer) for t in self.turns if t.sample is not None)
        return chat_context(done, prompt, keep_thinking=keep_thinking, open_tag=open_tag, close_tag=close_tag)

    @cached_property
    def _history(self) -> tuple[gr.ChatMessage, ...]:
        """The finished turns, rendered once per Chat (it is immutable), not on every streamed update."""
        out: list[gr.ChatMessage] = []
        for turn in self.turns:
            out.append(user_message(turn.prompt))
            if turn.sample is not None:
                out += trace_messages(turn.sample, stats=True, settings=turn.settings)
            if turn.error:
                out.append(gr.ChatMessage(role="assistant", content=f"**Error:** {safe_text(turn.error)}"))
            if turn.unsaved:
                out.append(gr.ChatMessage(role="assistant", content=unsaved_warning(turn.unsaved)))
        return tuple(out)

    def view(self, live: tuple[str, SampleResult, bool] | None = None) -> list[gr.ChatMessage]:
        """All turns as chat messages, plus the one still generating (``live``: prompt, sample, thinking?)."""
        out = list(self._history)
        if live is not None:
            prompt, sample, thinking_now = live
            out.append(user_message(prompt))
            out += trace_messages(sample, pending=thinking_now)
        return out


# --- generation -----------------------------------------------------------------------------------


def _live_status(live: SampleResult, thinking_now: bool, stopping: bool) -> str:
    """The status line while a run streams: "Thinking… 12 tokens · 1.3 s", or "Stopping…" once Stop was pressed."""
    tokens = live.thinking_tokens + live.answer_tokens
    doing = STOPPING if stopping else f"{'Thinking' if thinking_now else 'Answering'}…"
    return f"{doing} {tokens} tokens · {live.seconds:.1f} s"


class Playground(ModelTab):
    """The playground's handlers over one :class:`Runtime`; methods are wired as Gradio events.

    A :class:`ModelTab` whose slot in the cancel registry is the session's own: :meth:`accept` prepares
    the run, :meth:`ModelTab.running` brackets it, :meth:`cancel` stops it (and says so in the status line).
    """

    tab = "playground"

    def __init__(self, rt: Runtime, registry: CancelRegistry = CANCELS, pending: PendingSaves = PENDING) -> None:
        super().__init__(rt, registry)
        self.pending = pending
        self._steers: dict[str, SteerToken | None] = {}  # the running generation's "Stop thinking now", per session

    def accept(self, prompt: str, chat: Chat | None, request: gr.Request) -> tuple[str, str, list[gr.ChatMessage]]:
        """Submit: clear the box, hand the prompt on, show it at once (before the queue picks the run up)."""
        self.prepare(request)
        chat = chat or Chat()
        return "", prompt, chat.view(live=(prompt, empty_sample(), False))

    def refused(self, prompt: str, chat: Chat | None) -> tuple[str, list[gr.ChatMessage]]:
        """After a run was refused before it started (a bad setting, the token cap): the prompt back in the
        box and the chat as it was, without the question :meth:`accept` showed."""
        return prompt, (chat or Chat()).view()

    def busy(self, request: gr.Request) -> bool:
        """Whether this session's Playground is generating now (a second prompt would wait unseen)."""
        return self.registry.running(self.key(request)) > 0

    def generate(
        self, prompt: str, thinking: bool, effort: str, max_thinking_tokens: float | None,
        min_thinking_tokens: float | None, continuation: str, max_answer_tokens: float, temperature: float,
        top_p: float, seed: float | None, leave_out_thinking: bool, chat: Chat | None, request: gr.Request,
    ) -> Iterator[PlaygroundOutput]:  # fmt: skip
        """Stream one answer: yields (chat messages, status line, saved run or None, chat state).

        Takes the prompt, the :data:`CONTROLS` (named, as the API takes them), whether to leave earlier thinking
        out, the chat. The last yield carries the saved run (``run_id`` and the CLI's ``--json`` shape); the
        chat shows the run's numbers under the answer. ``seed`` below 0 means "not fixed".
        """
        controls = locals()  # the controls by name, before anything else is defined here
        chat = chat or Chat()
        with self.running(request) as token:
            settings = playground_settings(controls)
            if token.cancelled:  # Stop was pressed while the run waited in the queue
                yield chat.view(), CANCELLED_BEFORE_START, None, chat
                return
            fmt = self.rt.loaded.format
            messages = chat.context(
                prompt, keep_thinking=not leave_out_thinking, open_tag=fmt.open_tag, close_tag=fmt.close_tag
            )
            with self._steering(request) as steer:
                events = stream_run(
                    self.rt, messages, settings, token, kind="playground", steer=steer,
                    user=user_of(request), wait_for_save=SAVE_WAIT,
                )  # fmt: skip
                yield from self._stream(prompt, events, settings, token, chat, steer)

    def think_longer(
        self, thinking: bool, effort: str, max_thinking_tokens: float | None, min_thinking_tokens: float | None,
        continuation: str, max_answer_tokens: float, temperature: float, top_p: float, seed: float | None,
        chat: Chat | None, request: gr.Request,
    ) -> Iterator[PlaygroundOutput]:  # fmt: skip
        """Resume the last answer's thinking with the continuation string and a fresh budget (the controls'
        budget); streamed like a new turn and saved as a branch of that run."""
        controls = {**locals(), "thinking": True}
        chat = chat or Chat()
        last = chat.turns[-1] if chat.turns else None
        if last is None or last.run_id is None or last.sample is None:
            raise refusal("Think longer continues a finished, saved answer: ask something first.")
        if not last.sample.thinking.strip():
            raise refusal("The last answer did not think (thinking was off), so there is no thinking to continue.")
        with self.running(request) as token, self._steering(request) as steer:
            settings = playground_settings(controls)
            events = stream_think_longer(
                self.rt, last.run_id, 0, settings=settings, cancel=token, steer=steer, user=user_of(request)
            )
            yield from self._stream(last.prompt, events, settings, token, chat, steer)

    @contextmanager
    def _steering(self, request: gr.Request | None) -> Iterator[SteerToken]:
        """The run's "Stop thinking now" token (every engine steers), findable while it runs."""
        key = self.key(request)
        steer = self._steers[key] = SteerToken()
        try:
            yield steer
        finally:
            self._steers.pop(key, None)

    def stop_thinking(self, request: gr.Request) -> str:
        """ "Stop thinking now": the running generation closes its thinking at the next token and answers."""
        steer = self._steers.get(self.key(request))
        if steer is None:
            return "Nothing is thinking right now."
        steer.stop_thinking()
        return "Stopping the thinking: the answer comes next…"

    def _stream(
        self,
        prompt: str,
        events: Iterator[Any],
        settings: GenerationSettings,
        token: CancelToken,
        chat: Chat,
        steer: SteerToken | None = None,
    ) -> Iterator[PlaygroundOutput]:
        live = empty_sample()
        thinking_now = settings.thinking
        started = last = time.perf_counter()
        stopping = False  # Stop was pressed and the status line says so (the run's own stream writes it)
        try:
            first = next(events)
        except Exception as exc:  # the shared gate refused it (caps, context, text, an empty prompt): one sentence
            raise user_error(exc) from None
        try:
            for event in itertools.chain([first], events):
                now = time.perf_counter()
                live.seconds = now - started
                if isinstance(event, ThinkingDelta) and event.sample == 0:
                    last = last if live.thinking else 0.0  # show the first words at once
                    live.thinking += event.text
                elif isinstance(event, AnswerDelta) and event.sample == 0:
                    last = last if live.answer else 0.0
                    live.answer += event.text
                elif isinstance(event, Progress):
                    if thinking_now:
                        live.thinking_tokens = event.tokens
                    else:
                        live.answer_tokens = event.tokens - live.thinking_tokens
                elif isinstance(event, PhaseChange) and event.sample == 0 and event.phase != "thinking":
                    if thinking_now:
                        thinking_now, live.thinking_seconds = False, live.seconds
                        last = 0.0  # show the collapse at once
                elif isinstance(event, Finished):
                    continue
                elif isinstance(event, Saved):
                    yield self._finished(prompt, event, settings, chat, steer)
                    return
                if now - last >= UPDATE_EVERY or (token.cancelled and not stopping):
                    last, stopping = now, token.cancelled
                    yield (
                        chat.view(live=(prompt, live, thinking_now)),
                        _live_status(live, thinking_now, stopping),
                        None,
                        chat,
                    )
        except GeneratorExit:
            # The browser went away (or Gradio cancelled the event): stop the model, but still save the run.
            token.cancel()
            for _ in events:
                pass
            raise

    def _finished(
        self, prompt: str, saved: Saved, settings: GenerationSettings, chat: Chat, steer: SteerToken | None = None
    ) -> PlaygroundOutput:
        result = saved.result
        sample = result.samples[0] if result.samples else None
        error = result.error if sample is None or sample.stop_reason == "error" else None
        turn = Turn(prompt=prompt, sample=sample, settings=settings, run_id=saved.run_id, error=error)
        chat = chat.add(replace(turn, unsaved=saved.save_error))
        if error:
            gr.Warning(f"Generation failed: {error}")
        how = stop_reason_words(sample, settings) if sample is not None else f"failed: {error}"
        record = run_json(saved)
        if saved.pending and saved.ticket is not None:  # a busy database: the save goes on in the background
            record["pending_save"] = self.pending.add(saved.ticket)
            status = f"{SAVING} · {safe_text(how)}"
        elif saved.save_error:  # the trace is shown and returned, but the database refused it
            gr.Warning(saved.save_error)
            status = f"⚠️ Not saved: {safe_text(saved.save_error)} · {safe_text(how)}"
        else:
            status = f"Saved as run #{saved.run_id} · {safe_text(how)}"
        if sample is not None and sample.stop_reason == "user_cut" and steer is not None:
            after = steer.tokens_after_request
            status += f" · thinking stopped {after} token{'s' if after != 1 else ''} after you asked"
        return chat.view(), status, record, chat

    def await_save(self, run: dict[str, Any] | None, chat: Chat | None) -> Iterator[tuple[Any, ...]]:
        """After ``generate``: if its save is still retrying, keep "Saving…" up until it is saved ("Saved as
        run #N") or given up (a warning that stays under the trace). Yields (status, chat, run, chat state)."""
        ticket = self.pending.pop((run or {}).get("pending_save") if isinstance(run, dict) else None)
        if ticket is None:  # saved (or failed) already: leave every output as it is
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        chat = chat or Chat()
        for line in follow(ticket):
            if line is None:
                yield SAVING, gr.skip(), gr.skip(), gr.skip()
                continue
            unsaved = None if ticket.state == "saved" else ticket.error or "the database stayed busy"
            chat = chat.settle_last(ticket.run_id if unsaved is None else None, unsaved)
            run_id = ticket.run_id if unsaved is None else None
            ids = stored_sample_ids(self.rt.db, run_id) if run_id is not None else ()
            done = {**with_saved_ids(run or {}, run_id, ids), "pending_save": None}
            done["save"] = "saved" if unsaved is None else "failed"
            yield line, chat.view(), done, chat

    def cancel(self, request: gr.Request) -> str:  # type: ignore[override] - the answer says it
        """Stop this session's running generation; it keeps what it wrote and is saved as ``cancelled``.

        Returns "Stopping…" or "Nothing is running." for the API caller. The page's status line is written by the
        run's own stream alone ("Stopping…", then the saved run): were Stop to write it too, its answer could
        land after the run's last update on a busy server and leave "Stopping…" up for good."""
        n = self.registry.cancel(self.key(request))
        return STOPPING if n else NOTHING_RUNNING

    def new_chat(self) -> tuple[list[gr.ChatMessage], str, None, Chat]:
        """Start over: an empty chat (saved runs stay in History)."""
        return [], "", None, Chat()

    def examples(self) -> list[dict[str, Any]]:
        """The GSM8K example problems: question, worked answer and the final number."""
        return load_examples()
