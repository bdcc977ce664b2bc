"""The special tokens the budget rules act on: the ids that end a turn, and the ids that start the close tag.

Read from the tokenizer alone (no model, no torch), so the server engine counts with the same ids as the local
one. Knows nothing about budgets or generation.
"""

from __future__ import annotations

from typing import Any

_STOP_TOKEN_NAMES = (
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<|end|>",
    "<｜end▁of▁sentence｜>",
    "<|end_of_role|>",
)


def stop_token_ids(tokenizer: Any, generation_config: Any = None) -> list[int]:
    """Every id that ends the assistant's turn: EOS from the tokenizer, the generation config and chat markers."""
    ids: list[int] = []

    def add(value: Any) -> None:
        if value is None:
            return
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, int) and v >= 0 and v not in ids:
                ids.append(v)

    add(tokenizer.eos_token_id)
    if generation_config is not None:
        add(getattr(generation_config, "eos_token_id", None))
    vocab = tokenizer.get_vocab()
    for name in _STOP_TOKEN_NAMES:
        if name in vocab:
            add(vocab[name])
    return ids


def tag_start_ids(tokenizer: Any, tag: str) -> list[int]:
    """Tokens that begin ``tag`` as the model would write it after typical preceding text."""
    ids: list[int] = []
    for prefix in ("", " ", "\n", "\n\n", ".", ". ", ".\n", ")", "?", "!", ":"):
        encoded = tokenizer.encode(prefix + tag, add_special_tokens=False)
        for tok in encoded:
            piece = tokenizer.decode([tok])
            if tag[0] in piece:
                if tok not in ids:
                    ids.append(tok)
                break
    return ids
