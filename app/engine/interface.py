"""The one engine contract the services and the UI see, whichever engine runs the tokens.

Two implementations satisfy it: :class:`app.engine.generation.Engine` (transformers ``generate`` on the
in-process model thread, through the one decode loop of app.engine.decode) and
:class:`app.engine.remote.RemoteEngine` (phases of ``/v1/completions`` on an OpenAI-compatible inference
server). Both yield the same events (app.engine.events), the same stop reasons and the same budget guarantees
(app.engine.rulebook); the contract tests run on both (tests/test_engine_bundled.py,
tests/test_engine_prefixes.py: the ``engine`` fixture). Every method and argument a caller uses is stated
here, so no caller needs to ask an engine what it can do. Knows nothing about storage or UI.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from app.domain import GenerationResult, GenerationSettings, Messages, TracePrefix
from app.engine.events import CancelToken, EngineStatus, Event, Progress, RolloutBatch, SteerToken
from app.engine.reasoning_formats import ReasoningFormat
from app.engine.rulebook import RowStart


@runtime_checkable
class GenerationEngine(Protocol):
    """Generate traces for a conversation under :class:`GenerationSettings`.

    ``concurrency`` is how many generations may run at the same time: 1 for the local engine (they
    queue on the model thread), more for a server that batches requests itself. ``capture_tokens`` says
    whether samples carry token data (probability, entropy, alternatives: the lens). ``format`` and
    ``tokenizer`` are the model's reasoning format and (local) tokenizer, which both engines count with.
    """

    format: ReasoningFormat
    tokenizer: Any
    concurrency: int
    capture_tokens: bool

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

        ``snapshot_every`` (seconds): also yield a ``Snapshot`` of every sample at most that often. ``prefix``
        continues a stored trace; ``steer`` lets the caller stop the thinking early ("Stop thinking now").
        """
        ...

    def generate(
        self,
        messages: Messages | str,
        settings: GenerationSettings,
        cancel: CancelToken | None = None,
        *,
        prefix: TracePrefix | None = None,
    ) -> GenerationResult:
        """Run to completion and return the result."""
        ...

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
        """N continuations of each prefix: ``Progress``, then one ``RolloutBatch`` (call it through
        app.engine.rollouts.stream_rollouts, which checks the request)."""
        ...

    def status(self) -> EngineStatus:
        """Where the engine runs (server URL and model, or in process) and whether it can generate now."""
        ...

    def prompt_tokens(self, messages: Messages, thinking: bool) -> int:
        """How many tokens ``messages`` take once rendered for generation."""
        ...

    def forced_tokens(self, settings: GenerationSettings) -> int:
        """Tokens a budget cut may force beyond the budget (close tag + answer cue)."""
        ...

    @property
    def context_length(self) -> int | None:
        """The most tokens (prompt + generated) the model attends to; None when the engine can't say."""
        ...

    def prefix_start(self, prefix: TracePrefix | None, thinking: bool) -> tuple[str, RowStart]:
        """The text ``prefix`` appends to the prompt, and the state a sample starts from."""
        ...


def engine_concurrency(engine: GenerationEngine | None) -> int:
    """How many generations ``engine`` runs at once (1 for none)."""
    return max(1, engine.concurrency) if engine is not None else 1
