"""The engines' records: what a generation stream yields, how it is stopped or steered, what rollouts return and
what an engine says about itself. Shared by both engines and their callers; no torch here."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from app.domain import GenerationResult, GenerationSettings, Messages, SampleResult, TracePrefix


@dataclass(frozen=True)
class TextDelta:
    """New text of sample ``sample``: :class:`ThinkingDelta` or :class:`AnswerDelta` says which part."""

    sample: int
    text: str


class ThinkingDelta(TextDelta):
    """New thinking text of sample ``sample``."""


class AnswerDelta(TextDelta):
    """New answer text of sample ``sample``."""


@dataclass(frozen=True)
class PhaseChange:
    """Sample ``sample`` moved into ``phase`` ("thinking", "answer" or "done")."""

    sample: int
    phase: str


@dataclass(frozen=True)
class Progress:
    """One decoding step finished: ``tokens`` generated per row so far, ``done`` rows finished."""

    tokens: int
    done: int
    total: int


@dataclass(frozen=True)
class Snapshot:
    """Every sample's text and token counts so far (``stop_reason`` not final): what a crash-safe save keeps.

    Yielded at most every ``snapshot_every`` seconds when :meth:`Engine.stream` is asked for it.
    """

    samples: list[SampleResult]


@dataclass(frozen=True)
class Finished:
    """The last event of every stream, also after a cancel or an error."""

    result: GenerationResult


Event = ThinkingDelta | AnswerDelta | PhaseChange | Progress | Snapshot | Finished


@dataclass(frozen=True)
class RolloutRequest:
    """N continuations of each of several trace prefixes, checked on construction (``ValueError`` naming the fix).

    ``settings`` gives the budget and sampling rules (``settings.samples`` is ignored: ``n`` rollouts per prefix).
    A prefix with ``fresh_budget`` is refused: rollouts always count the prefix's thinking against the budget.
    ``reuse_cache`` (local engine): continue each prefix's N rows from one KV cache.
    """

    messages: Messages
    prefixes: tuple[TracePrefix, ...]
    settings: GenerationSettings
    n: int
    reuse_cache: bool = True

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n={self.n} rollouts must be at least 1")
        if not self.prefixes:
            raise ValueError("no prefixes to roll out from; pick at least one step")
        if any(p.fresh_budget for p in self.prefixes):
            raise ValueError(
                "rollouts count the prefix's thinking against the budget; fresh_budget is for Think longer"
            )


@dataclass
class RolloutBatch:
    """The last item of a :class:`RolloutRequest`'s stream: ``samples[p]`` are the N continuations of prefix ``p``."""

    samples: list[list[SampleResult]]
    seconds: float
    error: str | None = None
    reused_cache: bool = False


@dataclass(frozen=True)
class EngineStatus:
    """Where an engine runs and whether it can generate right now (``status()`` of either engine).

    ``server`` is the inference server's URL and ``server_model`` the model it serves (both None in process);
    ``error`` is None when the engine is ready, else the message saying what is wrong and the fix.
    """

    server: str | None = None
    server_model: str | None = None
    error: str | None = None


class CancelToken:
    """Thread-safe flag a UI or CLI sets to stop a running generation within a token or two."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


class SteerToken:
    """Thread-safe steering a UI sets while thinking streams: "Stop thinking now".

    The budget processor reads it before every token: once set, a row still thinking gets the close tag
    and the answer cue forced from the next token on (stop reason ``user_cut``); the answer then runs.
    """

    def __init__(self) -> None:
        self._stop_thinking = threading.Event()
        self._counter: Callable[[], int] | None = None
        #: Decoding steps done when the request came, and when the first row acted on it (None: not yet).
        self.requested_step: int | None = None
        self.acted_step: int | None = None

    def attach(self, counter: Callable[[], int]) -> None:
        """Let the generation that reads this token report its step count (see :attr:`tokens_after_request`)."""
        self._counter = counter

    def stop_thinking(self) -> None:
        if self.requested_step is None and self._counter is not None:
            self.requested_step = self._counter()
        self._stop_thinking.set()

    def mark_acted(self, step: int) -> None:
        if self.acted_step is None:
            self.acted_step = step

    @property
    def tokens_after_request(self) -> int | None:
        """Thinking tokens written between the request and the forced close tag (0 or 1 in practice)."""
        if self.requested_step is None or self.acted_step is None:
            return None
        return max(0, self.acted_step - self.requested_step)

    @property
    def stop_requested(self) -> bool:
        return self._stop_thinking.is_set()
