"""What both engines do the same way, from the tokenizer and format alone: prompts, token counts, prefixes.

:class:`EngineBase` is the shared half of the engine contract (app.engine.interface): building the prompt,
counting its tokens, the tokens a budget cut forces, where a trace prefix starts, and ``generate`` as "stream to
the end". :class:`~app.engine.generation.Engine` and :class:`~app.engine.remote.RemoteEngine` add ``stream``,
``stream_rollouts`` and ``status``. No torch here: the server engine imports it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from app.domain import GenerationResult, GenerationSettings, Messages, TracePrefix
from app.engine.events import CancelToken, Event, Finished
from app.engine.prefixes import prefix_start
from app.engine.reasoning_formats import ReasoningFormat, build_prompt
from app.engine.rulebook import RowStart


class EngineBase:
    """The prompt side of an engine; subclasses set ``tokenizer`` and ``format`` and implement ``stream``."""

    tokenizer: Any
    format: ReasoningFormat

    def stream(
        self,
        messages: Messages | str,
        settings: GenerationSettings,
        cancel: CancelToken | None = None,
        *,
        deltas: bool = True,
        prefix: TracePrefix | None = None,
    ) -> Iterator[Event]:
        raise NotImplementedError

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

    def prompt(self, messages: Messages, thinking: bool) -> str:
        """``messages`` rendered for generation in this model's format (app.engine.reasoning_formats)."""
        return build_prompt(self.format, self.tokenizer, messages, thinking)

    def prompt_tokens(self, messages: Messages, thinking: bool) -> int:
        """How many tokens ``messages`` take once rendered for generation (what ``stream`` will feed)."""
        return len(self.tokenizer(self.prompt(list(messages), thinking), add_special_tokens=False)["input_ids"])

    def forced_tokens(self, settings: GenerationSettings) -> int:
        """Tokens a budget cut may force beyond the budget (close tag + answer cue), for the context check."""
        cue = self.tokenizer(settings.answer_cue or "", add_special_tokens=False)["input_ids"]
        close = self.tokenizer(self.format.close_tag, add_special_tokens=False)["input_ids"]
        return len(cue) + len(close) + 2

    def prefix_start(self, prefix: TracePrefix | None, thinking: bool) -> tuple[str, RowStart]:
        """The text a prefix appends to the prompt, and the state a sample starts from (app.engine.prefixes)."""
        return prefix_start(self.tokenizer, self.format, prefix, thinking)
