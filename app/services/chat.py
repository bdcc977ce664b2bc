"""Multi-turn chat context: which earlier turns go back to the model, and in what form.

Earlier thinking is left out by default (Qwen3's advice for multi-turn chats: the template drops it
too); a turn without an answer (failed, or stopped before answering) is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.domain import completion_text


def chat_context(
    turns: Iterable[tuple[str, str, str]],
    prompt: str,
    *,
    keep_thinking: bool,
    open_tag: str = "<think>",
    close_tag: str = "</think>",
) -> list[dict[str, str]]:
    """Messages for the next generation from earlier ``(prompt, thinking, answer)`` turns and the new prompt."""
    messages: list[dict[str, str]] = []
    for user, thinking, answer in turns:
        if not answer:
            continue
        content = completion_text(thinking, answer, open_tag, close_tag) if keep_thinking else answer
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": content}]
    messages.append({"role": "user", "content": prompt})
    return messages
