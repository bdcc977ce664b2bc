"""Playground event handlers: thin adapters from Gradio inputs to :func:`app.services.runs.stream_run`.

Owns what is specific to a browser session and nothing else: the cancel registry (which running
generation a Stop click or the ``cancel`` API call should stop), turning the controls into
:class:`GenerationSettings`, the chat's turns (:class:`Chat`, kept in ``gr.State``) and throttling
the stream of UI updates. Generation, saving and answer extraction live in ``app.services``.

Other tabs reuse :data:`MODEL_QUEUE` (every event that runs the model shares one queue slot),
:data:`CANCELS` with :func:`session_key` to make their own Stop buttons, :func:`in_background` to stream
a service that reports progress through a callback, and :func:`bundled_problems` for example prompts.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

import gradio as gr

from app.domain import GenerationSettings, SampleResult
from app.engine.events import AnswerDelta, CancelToken, Finished, PhaseChange, Progress, ThinkingDelta
from app.services.chat import chat_context
from app.services.ownership import user_name
from app.services.recording import SAVE_RETRY_SECONDS, SaveTicket
from app.services.runs import Saved, stream_run
from app.services.runtime import Runtime
from app.services.sweep import Problem, load_problems
from app.ui.inputs import as_int, as_seed
from app.ui.listeners import watch_client
from app.ui.render import empty_sample, safe_text, stop_reason_words, trace_messages, user_message

#: Event-listener kwargs for anything that runs the model: one generation at a time across all tabs.
MODEL_QUEUE: dict[str, Any] = {"concurrency_id": "model", "concurrency_limit": 1}
#: Seconds between two streamed UI updates: enough to look live without flooding the browser.
UPDATE_EVERY = 0.1
#: Longest quiet spell of a background run before its handler yields anyway: Gradio notices a closed
#: browser tab only when a generator yields, and then closes the generator (which cancels the run).
HEARTBEAT = 0.5
#: Seconds the playground waits for a run's save before showing "Saving…" and following it in the background.
SAVE_WAIT = 2.0
EFFORTS = ("low", "medium", "high", "custom")
_DEFAULTS = GenerationSettings()

PlaygroundOutput = tuple[list[gr.ChatMessage], str, dict[str, Any] | None, "Chat"]


# --- cancelling -----------------------------------------------------------------------------------


class CancelRegistry:
    """Which :class:`CancelToken` belongs to which browser session (or ``gradio_client`` session).

    ``prepare`` is called when a prompt is submitted (so a Stop while the run still waits in the queue
    counts), ``begin``/``end`` bracket the generation, ``cancel`` stops all of a session's runs. The
    generator then finishes normally and saves the run with stop reason ``cancelled`` -- which is why
    Stop does not rely on Gradio's ``cancels=``, which would close the generator before it saves.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, CancelToken] = {}
        self._active: dict[str, list[CancelToken]] = {}

    def prepare(self, key: str) -> CancelToken:
        with self._lock:
            token = self._pending[key] = CancelToken()
            return token

    def begin(self, key: str) -> CancelToken:
        with self._lock:
            token = self._pending.pop(key, None) or CancelToken()
            self._active.setdefault(key, []).append(token)
            return token

    def end(self, key: str, token: CancelToken) -> None:
        with self._lock:
            tokens = self._active.get(key, [])
            if token in tokens:
                tokens.remove(token)
            if not tokens:
                self._active.pop(key, None)

    def cancel(self, key: str) -> int:
        """Cancel the session's queued and running generations; return how many were not cancelled yet.

        A queued run's token stays registered, cancelled, so ``begin`` hands it to that run when it starts.
        """
        with self._lock:
            pending = self._pending.get(key)
            tokens = [t for t in [*self._active.get(key, []), pending] if t is not None and not t.cancelled]
        for token in tokens:
            token.cancel()
        return len(tokens)

    def running(self, key: str) -> int:
        with self._lock:
            return len(self._active.get(key, []))


CANCELS = CancelRegistry()


def session_key(request: gr.Request | None) -> str:
    """The Gradio session (a browser tab, or one ``gradio_client.Client``) a request belongs to."""
    return (getattr(request, "session_hash", None) or "anonymous") if request is not None else "anonymous"


def user_of(request: gr.Request | None) -> str:
    """Who is asking: the ``--auth`` login, or ``local`` without one (what runs record as their creator)."""
    return user_name(getattr(request, "username", None) if request is not None else None)


def stop_key(request: gr.Request | None, tab: str) -> str:
    """This session's slot in the cancel registry, per tab, so a tab's Cancel stops only that tab's run."""
    return f"{session_key(request)}/{tab}"


class ModelTab:
    """What the analysis tabs (self-consistency, compare, sweep) share: a Cancel that counts from the click.

    Wire :meth:`prepare` on the button's click (not queued behind the model) and chain the model event after
    it, as the Playground does: a Cancel pressed while the run still waits in the queue is then kept, and the
    run stops before it starts. :meth:`running` brackets the run itself.
    """

    tab = "tab"
    idle_message = "Nothing is running in this session."

    def __init__(self, rt: Runtime, registry: CancelRegistry = CANCELS) -> None:
        self.rt = rt
        self.registry = registry

    def prepare(self, request: gr.Request) -> None:
        """The click, before the queue: from now on a Cancel in this session and tab counts."""
        self.registry.prepare(stop_key(request, self.tab))

    @contextmanager
    def running(self, request: gr.Request | None) -> Iterator[CancelToken]:
        """The run's token (the one :meth:`prepare` made, if any), registered while the run goes on."""
        key = stop_key(request, self.tab)
        token = self.registry.begin(key)
        try:
            with watch_client(request, token):  # a client that stopped reading loses its run
                yield token
        finally:
            self.registry.end(key, token)

    def cancel(self, request: gr.Request) -> None:
        """Stop this session's run in this tab, queued or running; what finished is kept and saved."""
        if not self.registry.cancel(stop_key(request, self.tab)):
            gr.Info(self.idle_message)


# --- running a service in the background ---------------------------------------------------------

R = TypeVar("R")
_END = object()


@dataclass(frozen=True)
class Done(Generic[R]):
    """The last item :func:`in_background` yields: what the work returned."""

    value: R


def in_background(
    work: Callable[[Callable[[Any], None]], R], token: CancelToken, *, heartbeat: float = HEARTBEAT
) -> Iterator[Any]:
    """Run ``work(report)`` in a worker thread and yield as it goes: every value it passes to ``report``,
    ``None`` after ``heartbeat`` quiet seconds, and last :class:`Done` with its return value.

    For handlers over services that report progress through a callback (compare, sweep, self-consistency):
    the handler yields on each item, so Gradio streams the progress and notices a closed browser tab.
    Closing this generator early -- Gradio closing the handler -- cancels ``token`` and waits for the
    worker, so the service saves what it has and the model is free again when ``close()`` returns. An
    exception raised by ``work`` is raised here.
    """
    items: queue.Queue = queue.Queue()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work(items.put)
        except BaseException as exc:  # handed to the consumer, never lost in the thread
            outcome["error"] = exc
        finally:
            items.put(_END)

    thread = threading.Thread(target=run, name="tracelab-ui-work", daemon=True)
    thread.start()
    finished = False
    try:
        while not finished:
            try:
                item = items.get(timeout=heartbeat)
            except queue.Empty:
                yield None
                continue
            finished = item is _END
            if not finished:
                yield item
    finally:
        if not finished:  # the consumer went away: stop the run, let it save, free the model
            token.cancel()
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    yield Done(outcome["value"])


# --- controls -> settings -------------------------------------------------------------------------


def build_settings(
    thinking: bool,
    effort: str,
    max_thinking_tokens: float | None,
    min_thinking_tokens: float | None,
    continuation: str | None,
    max_answer_tokens: float | None,
    temperature: float | None,
    top_p: float | None,
    seed: float | None,
) -> GenerationSettings:
    """The playground's controls as validated settings; a ``gr.Error`` naming the field when one is bad.

    Numbers are passed through as given (a blank field takes the default), so ``validate()`` refuses a
    bad one with its own message instead of it being quietly replaced.
    """
    effort = (effort or "low").lower()
    if effort not in EFFORTS:
        raise gr.Error(f"effort={effort!r} is not one of {', '.join(EFFORTS)}")
    custom = effort == "custom"
    try:
        settings = GenerationSettings(
            thinking=bool(thinking),
            effort=None if custom else effort,  # type: ignore[arg-type]
            max_thinking_tokens=as_int(max_thinking_tokens, "max thinking tokens") if custom else None,
            min_thinking_tokens=as_int(min_thinking_tokens, "min thinking tokens", 0) if custom else None,
            continuation=continuation if continuation else "Wait",
            max_answer_tokens=as_int(max_answer_tokens, "max answer tokens", _DEFAULTS.max_answer_tokens),  # type: ignore[arg-type]
            temperature=float(temperature or 0.0),
            top_p=float(top_p if top_p is not None else _DEFAULTS.top_p),
            seed=as_seed(seed),
        )
        if custom and settings.max_thinking_tokens is None:
            raise ValueError("a custom budget needs max thinking tokens; type a number, e.g. 512")
        settings.validate()
    except (TypeError, ValueError) as exc:
        raise gr.Error(str(exc)) from None
    return settings


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
        last = replace(self.turns[-1], run_id=run_id, unsaved=unsaved)
        return replace(self, turns=(*self.turns[:-1], last))

    def context(self, prompt: str, *, keep_thinking: bool, open_tag: str, close_tag: str) -> list[dict[str, str]]:
        """Messages for the next generation (see :func:`app.services.chat.chat_context`)."""
        done = ((t.prompt, t.sample.thinking, t.sample.answer) for t in self.turns if t.sample is not None)
        return chat_context(done, prompt, keep_thinking=keep_thinking, open_tag=open_tag, close_tag=close_tag)

    def view(self, live: tuple[str, SampleResult, bool] | None = None) -> list[gr.ChatMessage]:
        """All turns as chat messages, plus the one still generating (``live``: prompt, sample, thinking?)."""
        out: list[gr.ChatMessage] = []
        for turn in self.turns:
            out.append(user_message(turn.prompt))
            if turn.sample is not None:
                out += trace_messages(turn.sample, stats=True, settings=turn.settings)
            if turn.error:
                out.append(gr.ChatMessage(role="assistant", content=f"**Error:** {safe_text(turn.error)}"))
            if turn.unsaved:
                out.append(gr.ChatMessage(role="assistant", content=unsaved_warning(turn.unsaved)))
        if live is not None:
            prompt, sample, thinking_now = live
            out.append(user_message(prompt))
            out += trace_messages(sample, pending=thinking_now)
        return out


def unsaved_warning(reason: str) -> str:
    """The warning that stays under a trace the database did not take."""
    return (
        f"⚠️ **Not saved.** {safe_text(reason)} This trace exists only on this page: copy it before you "
        "close or reload the tab."
    )


def run_json(run_id: int | None, result: Any, save: str = "saved", pending: str | None = None) -> dict[str, Any]:
    """What the ``generate`` endpoint returns last: the saved run id, the CLI's ``--json`` shape, and how the
    save went (``save``: ``saved``, ``saving`` (then ``pending`` names the background save) or ``failed``)."""
    return {"run_id": run_id, **result.to_json(), "save": save, "pending_save": pending}


class PendingSaves:
    """Saves still retrying in the background (a busy database), by a random key the browser holds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tickets: dict[str, SaveTicket] = {}

    def add(self, ticket: SaveTicket) -> str:
        import secrets

        key = secrets.token_urlsafe(12)
        with self._lock:
            self._tickets[key] = ticket
        return key

    def pop(self, key: str) -> SaveTicket | None:
        with self._lock:
            return self._tickets.pop(key, None)


PENDING = PendingSaves()


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def bundled_problems(limit: int = 50) -> list[Problem]:
    """The bundled GSM8K sample (``load_problems("bundled")``); empty, not an error, when assets/ is missing."""
    try:
        return load_problems("bundled", limit=limit)
    except (OSError, ValueError):
        return []


def load_examples(limit: int = 50) -> list[dict[str, Any]]:
    """The bundled GSM8K problems offered as example prompts: question, worked answer and final number."""
    return [{"question": p.question, "answer": p.solution, "final": p.gold} for p in bundled_problems(limit)]


# --- generation -----------------------------------------------------------------------------------


class Playground:
    """The playground's handlers over one :class:`Runtime`; methods are wired as Gradio events."""

    def __init__(self, rt: Runtime, registry: CancelRegistry = CANCELS, pending: PendingSaves = PENDING) -> None:
        self.rt = rt
        self.registry = registry
        self.pending = pending

    def accept(self, prompt: str, chat: Chat | None, request: gr.Request) -> tuple[str, str, list[gr.ChatMessage]]:
        """Submit: clear the box, hand the prompt on, show it at once (before the queue picks the run up)."""
        self.registry.prepare(session_key(request))
        chat = chat or Chat()
        if not (prompt or "").strip():
            return prompt, prompt, chat.view()
        return "", prompt, chat.view(live=(prompt, empty_sample(), False))

    def generate(
        self,
        prompt: str,
        thinking: bool,
        effort: str,
        max_thinking_tokens: float | None,
        min_thinking_tokens: float | None,
        continuation: str,
        max_answer_tokens: float,
        temperature: float,
        top_p: float,
        seed: float | None,
        leave_out_thinking: bool,
        chat: Chat | None,
        request: gr.Request,
    ) -> Iterator[PlaygroundOutput]:
        """Stream one answer: yields (chat messages, status line, saved run or None, chat state).

        The last yield carries the saved run (``run_id`` and the CLI's ``--json`` shape); the chat shows
        the run's numbers under the answer. ``seed`` below 0 means "not fixed".
        """
        chat = chat or Chat()
        key = session_key(request)
        token = self.registry.begin(key)
        try:
            settings = build_settings(
                thinking, effort, max_thinking_tokens, min_thinking_tokens, continuation,
                max_answer_tokens, temperature, top_p, seed,
            )  # fmt: skip
            if not (prompt or "").strip():
                raise gr.Error("The prompt is empty: type a question first.")
            if token.cancelled:  # Stop was pressed while the run waited in the queue
                yield chat.view(), "Stopped before it started.", None, chat
                return
            fmt = self.rt.loaded.format
            messages = chat.context(
                prompt, keep_thinking=not leave_out_thinking, open_tag=fmt.open_tag, close_tag=fmt.close_tag
            )
            with watch_client(request, token):  # a client that stopped reading loses its run
                yield from self._stream(prompt, messages, settings, token, chat, user_of(request))
        finally:
            self.registry.end(key, token)

    def _stream(
        self,
        prompt: str,
        messages: list[dict[str, str]],
        settings: GenerationSettings,
        token: CancelToken,
        chat: Chat,
        user: str,
    ) -> Iterator[PlaygroundOutput]:
        live = empty_sample()
        thinking_now = settings.thinking
        started = last = time.perf_counter()
        try:
            events = stream_run(
                self.rt, messages, settings, token, kind="playground", user=user, wait_for_save=SAVE_WAIT
            )
            first = next(events)
        except ValueError as exc:  # the shared gate refused it (caps, context, text): one sentence
            raise gr.Error(str(exc)) from None
        events = _chain(first, events)
        try:
            for event in events:
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
                    yield self._finished(prompt, event, settings, chat)
                    return
                if now - last >= UPDATE_EVERY:
                    last = now
                    tokens = live.thinking_tokens + live.answer_tokens
                    status = f"{'Thinking' if thinking_now else 'Answering'}… {tokens} tokens · {live.seconds:.1f} s"
                    yield chat.view(live=(prompt, live, thinking_now)), status, None, chat
        except GeneratorExit:
            # The browser went away (or Gradio cancelled the event): stop the model, but still save the run.
            token.cancel()
            for _ in events:
                pass
            raise

    def _finished(self, prompt: str, saved: Saved, settings: GenerationSettings, chat: Chat) -> PlaygroundOutput:
        result = saved.result
        sample = result.samples[0] if result.samples else None
        error = result.error if sample is None or sample.stop_reason == "error" else None
        turn = Turn(prompt=prompt, sample=sample, settings=settings, run_id=saved.run_id, error=error)
        if saved.save_error:
            turn = replace(turn, unsaved=saved.save_error)
        chat = chat.add(turn)
        if error:
            gr.Warning(f"Generation failed: {error}")
        how = stop_reason_words(sample, settings) if sample is not None else f"failed: {error}"
        if saved.pending and saved.ticket is not None:  # the database is busy: the save goes on in the background
            key = self.pending.add(saved.ticket)
            status = f"Saving… the database is busy; retrying in the background · {safe_text(how)}"
            return chat.view(), status, run_json(None, result, "saving", key), chat
        if saved.save_error:  # the trace is shown and returned, but the database refused it
            gr.Warning(saved.save_error)
            status = f"⚠️ Not saved: {safe_text(saved.save_error)} · {safe_text(how)}"
            return chat.view(), status, run_json(None, result, "failed"), chat
        status = f"Saved as run #{saved.run_id} · {safe_text(how)}"
        return chat.view(), status, run_json(saved.run_id, result), chat

    def await_save(self, run: dict[str, Any] | None, chat: Chat | None) -> Iterator[tuple[Any, ...]]:
        """After ``generate``: if its save is still retrying, say "Saving…" until it is saved (then "Saved as
        run #N") or given up (then a warning that stays under the trace). Yields (status, chat, run, state)."""
        key = (run or {}).get("pending_save") if isinstance(run, dict) else None
        ticket = self.pending.pop(key) if isinstance(key, str) else None
        if ticket is None:
            return
        chat = chat or Chat()
        deadline = time.monotonic() + 3 * SAVE_RETRY_SECONDS
        while not ticket.wait(HEARTBEAT * 4) and time.monotonic() < deadline:
            yield "Saving… the database is busy; retrying in the background", gr.skip(), gr.skip(), gr.skip()
        if ticket.state == "saved":
            chat = chat.settle_last(ticket.run_id, None)
            done = {**(run or {}), "run_id": ticket.run_id, "save": "saved", "pending_save": None}
            yield f"Saved as run #{ticket.run_id} (after the database was busy)", chat.view(), done, chat
        else:
            reason = ticket.error or "the database stayed busy"
            chat = chat.settle_last(None, reason)
            failed = {**(run or {}), "save": "failed", "pending_save": None}
            yield f"⚠️ Not saved: {safe_text(reason)}", chat.view(), failed, chat

    def cancel(self, request: gr.Request) -> str:
        """Stop this session's running generation; it keeps what it wrote and is saved as ``cancelled``."""
        n = self.registry.cancel(session_key(request))
        return "Stopping…" if n else "Nothing is running."

    def new_chat(self) -> tuple[list[gr.ChatMessage], str, None, Chat]:
        """Start over: an empty chat (saved runs stay in History)."""
        return [], "", None, Chat()

    def examples(self) -> list[dict[str, Any]]:
        """The GSM8K example problems: question, worked answer and the final number."""
        return load_examples()
