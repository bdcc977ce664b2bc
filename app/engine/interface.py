"""The one engine interface the services and the UI see, whichever engine runs the tokens.

Two implementations satisfy it: :class:`app.engine.generation.Engine` (transformers ``generate`` on the
in-process model thread) and :class:`app.engine.remote.RemoteEngine` (phases of ``/v1/completions`` on
an OpenAI-compatible inference server). Both yield the same events (app.engine.events), the same stop
reasons and the same budget guarantees; the contract tests run on both (tests/test_engine_bundled.py,
tests/test_engine_prefixes.py: the ``engine`` fixture). Both continue trace prefixes (``stream(..., prefix=)``).
Knows nothing about storage or UI.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from app.domain import GenerationResult, GenerationSettings
from app.engine.events import CancelToken, Event
from app.engine.formats import ReasoningFormat

Messages = list[dict[str, str]]


@runtime_checkable
class GenerationEngine(Protocol):
    """Generate traces for a conversation under :class:`GenerationSettings`.

    ``concurrency`` is how many generations may run at the same time: 1 for the local engine (they
    queue on the model thread), more for a server that batches requests itself.
    """

    format: ReasoningFormat
    tokenizer: Any
    concurrency: int

    def stream(
        self,
        messages: Messages | str,
        settings: GenerationSettings,
        cancel: CancelToken | None = None,
        *,
        deltas: bool = True,
    ) -> Iterator[Event]:
        """Yield progress (and, with ``deltas``, text deltas and phase changes); always end with ``Finished``."""
        ...

    def generate(
        self, messages: Messages | str, settings: GenerationSettings, cancel: CancelToken | None = None
    ) -> GenerationResult:
        """Run to completion and return the result."""
        ...


def engine_concurrency(engine: GenerationEngine | None) -> int:
    """How many generations ``engine`` runs at once (1 for engines that don't say, and for none)."""
    return max(1, int(getattr(engine, "concurrency", 1)))
