"""Splitting a raw completion into its thinking and its answer.

Owns: the ``<think>...</think>`` convention (tags configurable per chat format).
Does not know: tokenizers, streaming, or which model produced the text; the engine passes the
tags of its format in and stores the two halves it gets back.
"""

from __future__ import annotations


def split_thinking(text: str, open_tag: str = "<think>", close_tag: str = "</think>") -> tuple[str, str]:
    """Return ``(thinking, answer)`` for a raw completion, both stripped of surrounding whitespace.

    - With a close tag: everything before the first close tag (minus a leading open tag) is thinking,
      everything after it is the answer.
    - Without one: a text that starts with the open tag is all thinking (the model was cut off while
      thinking), anything else is all answer (the model never thought, or thinking was off).
    """
    if not close_tag:
        raise ValueError("close_tag='' cannot split anything; pass the format's end-of-thinking tag, e.g. '</think>'")
    head, found, tail = text.partition(close_tag)
    if found:
        return _drop_open_tag(head, open_tag).strip(), tail.strip()
    stripped = text.lstrip()
    if open_tag and stripped.startswith(open_tag):
        return stripped[len(open_tag) :].strip(), ""
    return "", text.strip()


def _drop_open_tag(text: str, open_tag: str) -> str:
    stripped = text.lstrip()
    if open_tag and stripped.startswith(open_tag):
        return stripped[len(open_tag) :]
    return text
