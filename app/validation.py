"""Cleaning and bounding what people type, before any layer uses it: one place every entry point shares.

Text from a browser, an API client or a command line may hold lone UTF-16 surrogates (``"\\ud800"``, or
the ``surrogateescape`` characters Python makes from invalid UTF-8 in ``argv``) and NUL characters; tokenizers,
JSON encoders and databases reject those with errors that name their own internals. :func:`clean_text`
replaces each with U+FFFD, so the text is still shown and saved, just with a visible replacement mark.
:func:`check_length` refuses text longer than a documented limit with a sentence naming the field.

Pure functions over ``str``; imports only ``app.domain`` and ``app.errors``, so every layer may use them.
"""

from __future__ import annotations

from typing import Any

from app.domain import SEED_MAX, SHORT_TEXT_MAX
from app.errors import InvalidInput

__all__ = ["COMMENT_MAX", "PROMPT_MAX_CHARS", "SEED_MAX", "SHORT_TEXT_MAX", "check_length", "clean_any", "clean_text"]

REPLACEMENT = "\ufffd"
#: Longest prompt accepted, in characters (the token check against the model's context comes after).
PROMPT_MAX_CHARS = 200_000
#: Longest comment or reason a person may attach to a label or a preference.
COMMENT_MAX = 10_000


def clean_text(text: str) -> str:
    """``text`` with lone surrogates and NUL characters replaced by U+FFFD (valid text comes back unchanged)."""
    if text.isascii() and "\x00" not in text:
        return text
    # Through UTF-16: a high+low pair becomes the character it encodes, each lone half one U+FFFD.
    fixed = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace") if _has_surrogate(text) else text
    return fixed.replace("\x00", REPLACEMENT)


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def clean_any(value: Any) -> Any:
    """:func:`clean_text` applied to every string inside lists, tuples and dict values."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list | tuple):
        return type(value)(clean_any(v) for v in value)
    if isinstance(value, dict):
        return {k: clean_any(v) for k, v in value.items()}
    return value


def check_length(name: str, text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else ``InvalidInput`` (a ``ValueError``) naming the field and limit."""
    if len(text) > limit:
        raise InvalidInput(f"The {name} is {len(text):,} characters long; the limit is {limit:,}. Shorten it.")
    return text
