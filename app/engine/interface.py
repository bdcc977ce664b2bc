"""The one engine contract the services and the UI see, whichever engine runs the tokens.

:class:`GenerationEngine` states every method and argument a caller uses, so no caller needs to ask an engine what
it can do, and does the half both engines share from the tokenizer and format alone: the prompt, its token count,
the tokens a budget cut forces, where a trace prefix starts, ``generate`` as "stream to the end", and turning the
arguments of ``stream`` and ``stream_rollouts`` into one checked request. Two engines implement the rest:
:class:`app.engine.generation.Engine` (transformers ``generate`` on the in-process model thread, through the one
decode loop of app.engine.decode) and :class:`app.engine.remote.RemoteEngine` (phases of ``/v1/completions`` on an
OpenAI-compatible server). Both yield the same events (app.engine.events), the same stop reasons and the same
budget guarantees (app.engine.rulebook); the contract tests run on both (tests/test_engine_bundled.py,
tests/test_engine_prefixes.py: the ``engine`` fixture). No torch here. Knows nothing about storage or UI.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from app.domain import GenerationResult, GenerationSettings, Messages, SampleResult, TracePrefix, as_messages
from app.engine.events import (
    CancelToken,
    EngineStatus,
    Event,
    Finished,
    Progress,
    RolloutBatch,
    RolloutRequest,
    SteerToken,
)
from app.engine.model_source import LoadedModel
from app.engine.prefixes import prefix_start
from app.engine.reasoning_formats import ReasoningFormat, build_prompt
from app.engine.rulebook import RowStart, end_delimiter


@dataclass(frozen=True)
class StreamRequest:
    """One ``stream`` call, resolved: the conversation, where the samples start, and what to report."""

    messages: Messages
    settings: GenerationSettings
    cancel: CancelToken
    deltas: bool
    snapshot_every: float | None
    #: The text a trace prefix appends to the prompt, and the state every sample starts from.
    lead: str
    start: RowStart
    #: Thinking tokens added to both budget bounds ("Think longer": the prefix's thinking is not counted).
    extra_thinking: int
    steer: SteerToken | None


class GenerationEngine(ABC):
    """Generate traces for a conversation under :class:`GenerationSettings`.

    ``concurrency`` is how many generations may run at the same time: 1 for the local engine (they queue on the
    model thread), more for a server that batches requests itself. ``capture_tokens`` says whether samples carry
    token data (probability, entropy, alternatives: the lens). ``format`` and ``tokenizer`` are the model's
    reasoning format and (local) tokenizer, which both engines count with.
    """

    loaded: LoadedModel
    format: ReasoningFormat
    tokenizer: Any
    concurrency: int
    capture_tokens: bool

    # -- what every caller uses -------------------------------------------------------------------

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
        """Yield progress (and, with ``deltas``, text deltas and phase changes); always end with ``Finished``.

        ``snapshot_every`` (seconds): also yield a ``Snapshot`` of every sample at most that often, for saving the
        text so far while the run goes on. ``prefix`` continues a stored trace (:class:`~app.domain.TracePrefix`):
        the samples' text and token counts include it, and its thinking counts against the budget unless
        ``prefix.fresh_budget`` ("Think longer"). ``steer`` lets the caller stop the thinking early ("Stop thinking
        now", stop reason ``user_cut``).
        """
        lead, start = self.prefix_start(prefix, settings.thinking)
        extra = start.thinking_tokens if prefix is not None and prefix.fresh_budget else 0
        cancel = cancel or CancelToken()
        msgs = as_messages(messages)
        yield from self.run(StreamRequest(msgs, settings, cancel, deltas, snapshot_every, lead, start, extra, steer))

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
        """N continuations of each prefix (a :class:`RolloutRequest`, checked first): ``Progress`` while the
        ``len(prefixes) * n`` rows decode, then one ``RolloutBatch``."""
        request = RolloutRequest(as_messages(messages), tuple(prefixes), settings, n, reuse_cache)
        yield from self.run_rollouts(request, cancel or CancelToken())

    def status(self) -> EngineStatus:
        """Where the engine runs (server URL and model, or in process) and whether it can generate now; in
        process (this default) there is no server and the engine is always ready."""
        return EngineStatus()

    @property
    @abstractmethod
    def context_length(self) -> int | None:
        """The most tokens (prompt + generated) the model attends to; None when the engine can't say."""

    def prompt_tokens(self, messages: Messages, thinking: bool) -> int:
        """How many tokens ``messages`` take once rendered for generation (what ``stream`` will feed)."""
        return len(self.tokenizer(self.prompt(list(messages), thinking), add_special_tokens=False)["input_ids"])

    def forced_tokens(self, settings: GenerationSettings) -> int:
        """Tokens a budget cut may force beyond the budget (close tag + answer cue), for the context check."""
        forced = end_delimiter(self.format.close_tag) + (settings.answer_cue or "")
        return len(self.tokenizer(forced, add_special_tokens=False)["input_ids"]) + 2

    def prefix_start(self, prefix: TracePrefix | None, thinking: bool) -> tuple[str, RowStart]:
        """The text a prefix appends to the prompt, and the state a sample starts from (app.engine.prefixes)."""
        return prefix_start(self.tokenizer, self.format, prefix, thinking)

    # -- what each engine implements --------------------------------------------------------------

    @abstractmethod
    def run(self, request: StreamRequest) -> Iterator[Event]:
        """The events of one :meth:`stream` call, ending with ``Finished``."""

    @abstractmethod
    def run_rollouts(self, request: RolloutRequest, cancel: CancelToken) -> Iterator[Progress | RolloutBatch]:
        """The items of one :meth:`stream_rollouts` call, ending with one ``RolloutBatch``."""

    # -- shared by both ---------------------------------------------------------------------------

    def prompt(self, messages: Messages, thinking: bool) -> str:
        """``messages`` rendered for generation in this model's format (app.engine.reasoning_formats)."""
        return build_prompt(self.format, self.tokenizer, messages, thinking)

    def result(
        self,
        request: StreamRequest,
        samples: list[SampleResult],
        seconds: float,
        error: str | None,
        precision: str | None = None,
    ) -> GenerationResult:
        """The :class:`~app.domain.GenerationResult` of ``request``, for its ``Finished`` event."""
        return GenerationResult(
            model=self.loaded.name,
            format=self.format.name,
            settings=request.settings,
            samples=samples,
            prompt=request.messages[-1]["content"],
            messages=request.messages,
            seconds=seconds,
            error=error,
            precision=precision,
        )


def engine_concurrency(engine: GenerationEngine | None) -> int:
    """How many generations ``engine`` runs at once (1 for none)."""
    return max(1, engine.concurrency) if engine is not None else 1
