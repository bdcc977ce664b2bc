"""Where a continuation of a stored trace starts: the text a :class:`~app.domain.TracePrefix` adds to the prompt.

One rule for both engines (app.engine.generation and app.engine.remote): a prefix inside the thinking is the
thinking so far, left open; a prefix inside the answer closes the thinking as budget forcing would (the
delimiter, then the answer so far). The tokens already written are counted with the local tokenizer, so the
budget counts them the same way on either engine. Knows nothing about models, servers or storage.
"""

from __future__ import annotations

from typing import Any

from app.domain import TracePrefix
from app.engine.reasoning_formats import ReasoningFormat
from app.engine.rulebook import ANSWER, THINKING, RowStart


def prefix_start(
    tokenizer: Any, fmt: ReasoningFormat, prefix: TracePrefix | None, thinking: bool
) -> tuple[str, RowStart]:
    """The text ``prefix`` appends to the prompt, and the state a sample starts from (tokens already written)."""
    phase = THINKING if thinking else ANSWER
    if prefix is None:
        return "", RowStart(phase=phase)
    if not thinking and prefix.thinking:
        raise ValueError("the prefix has thinking text but thinking is off; turn thinking on to continue it")

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False)) if text else 0

    if not prefix.in_answer:
        if not thinking:
            return "", RowStart(phase=ANSWER)
        return prefix.thinking, RowStart(phase=THINKING, thinking_tokens=count(prefix.thinking))
    answer = prefix.answer or ""
    if not thinking:
        return answer, RowStart(phase=ANSWER, answer_tokens=count(answer))
    lead = f"{prefix.thinking.rstrip()}\n{fmt.close_tag}\n\n{answer}"
    return lead, RowStart(phase=ANSWER, thinking_tokens=count(prefix.thinking.strip()), answer_tokens=count(answer))
