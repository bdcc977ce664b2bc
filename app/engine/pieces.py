"""Token ids -> the text each token contributes, so a trace can be drawn token by token and stay exact.

Decoding tokens one at a time is wrong in two ways: byte-level tokenizers split a multi-byte character
over several tokens (each alone decodes to U+FFFD), and SentencePiece tokenizers drop a token's leading
space at the start of a sequence. :func:`token_pieces` decodes each token in the context of the few
before it and keeps only what it adds, so ``"".join(pieces) == tokenizer.decode(ids)``; a token that
only starts a character contributes "" and the token that completes it carries the whole character.
Knows nothing about models, storage or UI.
"""

from __future__ import annotations

from typing import Any

_CONTEXT = 4  # tokens of left context used to decode each token


def token_pieces(tokenizer: Any, ids: list[int]) -> list[str]:
    """The text each of ``ids`` adds to the decoded string (see the module docstring)."""
    pieces: list[str] = []
    start = 0  # first token whose text is not emitted yet
    for i in range(len(ids)):
        ctx = max(0, start - _CONTEXT)
        base = tokenizer.decode(ids[ctx:start], skip_special_tokens=False) if ctx < start else ""
        text = tokenizer.decode(ids[ctx : i + 1], skip_special_tokens=False)
        if text.endswith("\ufffd") and i + 1 < len(ids):  # a character still incomplete: wait for the rest
            pieces.append("")
            continue
        pieces.append(text[len(base) :] if text.startswith(base) else text)
        start = i + 1
    return pieces


def alternative_texts(tokenizer: Any, top_ids: list[list[int]]) -> dict[int, str]:
    """The text of every id listed as an alternative (decoded alone: what the token would have added)."""
    unique = sorted({i for ids in top_ids for i in ids})
    return {i: tokenizer.decode([i], skip_special_tokens=False) for i in unique}
