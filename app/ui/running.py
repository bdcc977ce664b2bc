"""Running a long task from a tab: the one loop that streams progress to the page, with Cancel and a clean end.

How a new tab uses it (the Self-consistency, Compare and Sweep tabs are the worked examples)::

    class Lens(ModelTab):
        tab = "lens"                                   # this tab's slot in the cancel registry
        idle_message = "Nothing is running in this session."

        def run(self, prompt: str, budget: float | None, request: gr.Request) -> Iterator[tuple[Any, ...]]:
            def plan() -> Work[LensReport]:            # parse the inputs; a refusal -> one gr.Error line
                settings = analysis_settings(True, budget, None, 0.0, None)
                return lambda token, report: svc.run_lens(self.rt, prompt, settings, cancel=token, progress=report)

            yield from self.stream_task(
                request,
                plan,
                show=lambda text: (status_html(text), None),   # the outputs while it runs: a status line
                describe=lambda item, seconds: f"Running… {seconds:.1f} s",  # item: the last progress value
                finish=lambda report: (summary_html(report), report.to_json()),
            )

        # wiring, in build_tab: the click prepares (so a Cancel while queued counts), then the model event runs
        run_btn.click(tab.prepare, None, None, **PREPARE).success(tab.run, inputs, outputs, api_name="lens",
                                                                  **MODEL_QUEUE)
        stop_btn.click(tab.cancel, None, None, api_name="cancel_lens", concurrency_limit=None)

``stream_task`` owns everything else: registering the run's :class:`CancelToken`, "Cancelled before it
started" when Cancel was pressed while the run waited in the queue, running the service in a worker thread
(:func:`in_background`) while yielding status updates and heartbeats (so Gradio notices a closed browser tab
and the run is cancelled and still saved), throttling, and turning a user's mistake into one ``gr.Error`` line
(:func:`user_error`) while a bug's traceback goes to the log and the page says it is a bug.

Also owns the shared machinery of every model-running event: :data:`MODEL_QUEUE` (one generation at a time
across all tabs), the per-session cancel registry (:data:`CANCELS`, :func:`session_key`, :func:`stop_key`)
and, through :meth:`ModelTab.running`, the watch that cancels a run whose client stopped reading
(:mod:`app.ui.listeners`). Who is asking is :mod:`app.ui.caller`.
Knows nothing of any one tab, and nothing of the store.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import gradio as gr

from app.engine.events import CancelToken
from app.errors import UserError, is_user_error
from app.services.runtime import Runtime
from app.ui.listeners import watch_client
from app.ui.refusal import refusal
from app.ui.render import status_html

#: Event-listener kwargs for anything that runs the model: one generation at a time across all tabs
#: (app.ui.server.prepare raises the limit to the engine's concurrency on an inference server).
MODEL_QUEUE: dict[str, Any] = {"concurrency_id": "model", "concurrency_limit": 1}
#: Event-listener kwargs for the click that prepares a run (:meth:`ModelTab.prepare`): never queued behind the model.
PREPARE: dict[str, Any] = {"api_visibility": "private", "concurrency_limit": None, "show_progress": "hidden"}
#: Seconds between two streamed UI updates: enough to look live without flooding the browser.
UPDATE_EVERY = 0.1
#: Longest quiet spell of a background run before its handler yields anyway: Gradio notices a closed
#: browser tab only when a generator yields, and then closes the generator (which cancels the run).
HEARTBEAT = 0.5
#: What a tab shows when Cancel was pressed while its run still waited in the queue.
CANCELLED_BEFORE_START = "Cancelled before it started; nothing was run."

#: How the page names an exception that is nobody's mistake but the program's (the traceback is in the log).
BUG_MESSAGE = "Something went wrong (this is a bug, please report it)"

log = logging.getLogger(__name__)
R = TypeVar("R")
Report = Callable[[Any], None]
#: A planned run: given its cancel token and a ``report(progress)`` callback, do the work and return the result.
Work = Callable[[CancelToken, Report], R]


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

    def cancel_session(self, session: str) -> int:
        """Cancel every running generation of one Gradio session (all its tabs); return how many it has running
        (cancelled now or before). ``POST /gradio_api/cancel`` of a running event goes here
        (:mod:`app.ui.cancelling`), so the run ends itself and is saved instead of being closed mid-step."""
        prefix = f"{session}/"
        with self._lock:
            tokens = [t for key, ts in self._active.items() if key.startswith(prefix) for t in ts]
        for token in tokens:
            token.cancel()
        return len(tokens)


CANCELS = CancelRegistry()


def session_key(request: gr.Request | None) -> str:
    """The Gradio session (a browser tab, or one ``gradio_client.Client``) a request belongs to."""
    return (getattr(request, "session_hash", None) or "anonymous") if request is not None else "anonymous"


def stop_key(request: gr.Request | None, tab: str) -> str:
    """This session's slot in the cancel registry, per tab, so a tab's Cancel stops only that tab's run."""
    return f"{session_key(request)}/{tab}"


def user_error(exc: BaseException) -> gr.Error:
    """What the page shows for an exception, as one ``gr.Error`` line: a refusal's own message (a
    :class:`UserError`, or a type :func:`is_user_error` accepts), a ``gr.Error`` as it is; for anything else,
    a bug, the traceback goes to the log and the line says "this is a bug, please report it"."""
    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, UserError) or is_user_error(exc):
        return refusal(str(exc))
    log.error("a UI handler failed", exc_info=exc)
    lines = str(exc).strip().splitlines()
    return gr.Error(f"{BUG_MESSAGE}: {type(exc).__name__}" + (f": {lines[0]}" if lines else ""), print_exception=False)


# --- running a service in the background ---------------------------------------------------------

_END = object()


@dataclass(frozen=True)
class Done(Generic[R]):
    """The last item :func:`in_background` yields: what the work returned."""

    value: R


def in_background(work: Callable[[Report], R], token: CancelToken, *, heartbeat: float = HEARTBEAT) -> Iterator[Any]:
    """Run ``work(report)`` in a worker thread and yield as it goes: every value it passes to ``report``,
    ``None`` after ``heartbeat`` quiet seconds, and last :class:`Done` with its return value.

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


# --- the tab side ---------------------------------------------------------------------------------


class ModelTab:
    """Base of a tab whose handlers run the model: a Cancel that counts from the click, and :meth:`stream_task`.

    Wire :meth:`prepare` on the button's click (``**PREPARE``: not queued behind the model) and chain the model
    event after it: a Cancel pressed while the run still waits in the queue is then kept, and the run stops
    before it starts. :meth:`running` brackets the run itself (``stream_task`` uses it).
    """

    tab = "tab"
    idle_message = "Nothing is running in this session."

    def __init__(self, rt: Runtime, registry: CancelRegistry = CANCELS) -> None:
        self.rt = rt
        self.registry = registry

    def key(self, request: gr.Request | None) -> str:
        """This session's slot in the cancel registry for this tab."""
        return stop_key(request, self.tab)

    def prepare(self, request: gr.Request) -> None:
        """The click, before the queue: from now on a Cancel in this session and tab counts."""
        self.registry.prepare(self.key(request))

    @contextmanager
    def running(self, request: gr.Request | None) -> Iterator[CancelToken]:
        """The run's token (the one :meth:`prepare` made, if any), registered while the run goes on."""
        key = self.key(request)
        token = self.registry.begin(key)
        try:
            with watch_client(request, token):  # a client that stopped reading loses its run
                yield token
        finally:
            self.registry.end(key, token)

    def cancel(self, request: gr.Request) -> None:
        """Stop this session's run in this tab, queued or running; what finished is kept and saved."""
        if not self.registry.cancel(self.key(request)):
            gr.Info(self.idle_message)

    def stream_task(
        self,
        request: gr.Request | None,
        plan: Callable[[], Work[R]],
        *,
        show: Callable[[str], tuple[Any, ...]],
        describe: Callable[[Any, float], str],
        finish: Callable[[R], tuple[Any, ...]],
        every: float = 0.0,
    ) -> Iterator[tuple[Any, ...]]:
        """Run one long task for this tab and yield the handler's outputs as it goes.

        1. ``plan()`` parses the inputs and returns the work; what it raises is shown by :func:`user_error`.
        2. If Cancel was pressed while the run was queued: ``show(CANCELLED_BEFORE_START)`` and stop.
        3. The work runs in a worker thread. On each progress value it reports (and on each heartbeat) this
           yields ``show(describe(latest progress value or None, seconds since start))``, at most once per
           ``every`` seconds for progress values (heartbeats always yield, so a closed tab is noticed).
        4. Last it yields ``finish(result)``. What the work raises is shown by :func:`user_error`.
        """
        with self.running(request) as token:
            try:
                work = plan()
            except Exception as exc:
                raise user_error(exc) from None
            if token.cancelled:  # Cancel was pressed while the run waited in the queue
                yield show(CANCELLED_BEFORE_START)
                return
            started, last = time.perf_counter(), 0.0
            latest: Any = None
            items = in_background(lambda report: work(token, report), token)
            try:
                with closing(items):
                    for item in items:
                        if isinstance(item, Done):
                            result: R = item.value
                            break
                        now = time.perf_counter()
                        if item is not None:  # else a heartbeat: yield anyway, so a closed tab is noticed
                            latest = item
                            if now - last < every:
                                continue
                        last = now
                        yield show(describe(latest, now - started))
            except Exception as exc:
                raise user_error(exc) from exc
        yield finish(result)

    def stream_report(
        self,
        request: gr.Request | None,
        plan: Callable[[], Work[R]],
        *,
        describe: Callable[[Any, float], str],
        outputs: Callable[[R], tuple[Any, ...]],
        cancelled: str,
        cleared: int,
    ) -> Iterator[tuple[Any, ...]]:
        """:meth:`stream_task` for a saved report (Sweep, Probe): while it runs, a status line, ``cleared`` emptied
        outputs and the list of past reports left as it is; last ``outputs(report)``, warning ``cancelled`` first
        when it was cancelled."""
        yield from self.stream_task(
            request,
            plan,
            show=lambda text: (status_html(text), *[None] * cleared, gr.skip()),
            describe=describe,
            finish=lambda report: outputs(warn_if_cancelled(report, cancelled)),
        )


# --- saved reports (Sweep, Probe) -------------------------------------------------------------------


def open_saved(value: Any, what: str, load: Callable[[int], R]) -> R:
    """A past report picked in a tab's list (a sweep, a probe): ``load(its number)``, or one ``gr.Error`` line."""
    if value in (None, ""):
        raise refusal(f"Pick a past {what} first (Refresh list if it is not there).")
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):  # text, a list, Infinity
        raise refusal(f"{value!r} is not a {what} number; pick one from the list") from None
    try:
        return load(number)
    except Exception as exc:
        raise user_error(exc) from exc


def warn_if_cancelled(report: R, message: str) -> R:
    """``report`` as it is, after a warning when it was cancelled (it then covers only what finished)."""
    if getattr(report, "cancelled", False):
        gr.Warning(message)
    return report


def counted(total: Callable[[], int], what: str, on_count: Callable[[int, int], None] | None = None) -> Callable:
    """A ``describe`` for :meth:`ModelTab.stream_task` whose work reports ``(done, of)``: "3 of 8 <what>… 1.2 s"
    (``of`` is ``total()`` until the first report); ``on_count(done, of)`` on each report."""

    def describe(latest: tuple[int, int] | None, seconds: float) -> str:
        done, of = latest or (0, total())
        if latest is not None and on_count is not None:
            on_count(done, of)
        return f"{done} of {of} {what}… {seconds:.1f} s"

    return describe
