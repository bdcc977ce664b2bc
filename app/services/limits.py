"""The one gate every generation passes: clean the text, then bound the work against the token caps.

:func:`checked_request` is called by :func:`app.services.runs.stream_run`, which the Playground, Self-consistency,
Compare, Sweep, the API and the CLI all go through, so no entry point can skip it. It refuses (``ValueError``, a
sentence naming the cap and the fix) rather than clipping: a trace generated under a budget other than the one
asked for would be mislabelled evidence. Two caps apply to every sample:

- ``--max-new-tokens`` (operator setting): thinking budget + answer tokens per sample;
- the model's context length: prompt tokens + thinking budget + forced cue + answer tokens.
"""

from __future__ import annotations

from dataclasses import replace

from app.domain import GenerationSettings, Messages, as_messages
from app.engine.interface import GenerationEngine
from app.errors import InvalidInput
from app.services.inputs import require_prompt
from app.validation import PROMPT_MAX_CHARS, check_length, clean_text


def clean_messages(messages: Messages | str) -> Messages:
    """The conversation as role/content dicts with clean text; ``ValueError`` if the prompt is empty or huge."""
    cleaned = [
        {"role": str(m.get("role", "user")), "content": clean_text(str(m.get("content") or ""))}
        for m in as_messages(messages)
    ]
    require_prompt(cleaned[-1]["content"] if cleaned else "")
    check_length("prompt (with the earlier turns)", "".join(m["content"] for m in cleaned), PROMPT_MAX_CHARS)
    return cleaned


def clean_settings(settings: GenerationSettings) -> GenerationSettings:
    return replace(settings, continuation=clean_text(settings.continuation), answer_cue=clean_text(settings.answer_cue))


def new_tokens(settings: GenerationSettings) -> tuple[int, int]:
    """(thinking budget, answer tokens) one sample may generate under ``settings``."""
    return (settings.resolved_budget()[0] if settings.thinking else 0), settings.max_answer_tokens


def check_cap(settings: GenerationSettings, max_new_tokens: int) -> None:
    """``ValueError`` naming ``--max-new-tokens`` when thinking budget + answer tokens exceed it."""
    thinking, answer = new_tokens(settings)
    if thinking + answer > max_new_tokens:
        if answer < max_new_tokens:  # the answer fits: the thinking budget is what to lower
            fix = f"lower the budget to at most {max_new_tokens - answer:,} thinking tokens"
        elif thinking < max_new_tokens:  # the answer alone is over the cap
            fix = f"lower max answer tokens to at most {max_new_tokens - thinking:,}"
        else:
            fix = f"lower max thinking tokens and max answer tokens to at most {max_new_tokens:,} together"
        raise InvalidInput(
            f"max thinking tokens ({thinking:,}) + max answer tokens ({answer:,}) = {thinking + answer:,} is more "
            f"than this server's cap of {max_new_tokens:,} new tokens per sample (--max-new-tokens); {fix}"
        )


def check_context(settings: GenerationSettings, prompt_tokens: int, forced: int, context: int | None) -> None:
    """``ValueError`` when prompt + budget + forced cue + answer would not fit in the model's context."""
    if context is None:
        return
    thinking, answer = new_tokens(settings)
    if prompt_tokens + 1 >= context:
        raise InvalidInput(
            f"The prompt is {prompt_tokens:,} tokens long and the model's context holds {context:,}: "
            "shorten the prompt (or start a new chat, since earlier turns count too)."
        )
    extra = forced if settings.thinking else 0
    need = prompt_tokens + thinking + extra + answer
    if need > context:
        room = context - prompt_tokens - extra - answer
        fix = (
            f"lower max thinking tokens to at most {room:,}"
            if settings.thinking and room > 0
            else f"lower max answer tokens to at most {max(context - prompt_tokens - extra, 1):,}"
        )
        raise InvalidInput(
            f"The prompt ({prompt_tokens:,} tokens) + max thinking tokens ({thinking:,}) + max answer tokens "
            f"({answer:,}) need {need:,} tokens but the model's context holds {context:,}: {fix}, "
            "or shorten the prompt."
        )


def checked_request(
    engine: GenerationEngine, messages: Messages | str, settings: GenerationSettings, max_new_tokens: int
) -> tuple[Messages, GenerationSettings]:
    """Clean ``messages`` and ``settings`` and check them against both caps; return them cleaned.

    The context check asks the engine for ``context_length``, ``prompt_tokens`` and ``forced_tokens``; an engine
    that doesn't know its context (a server) is checked against ``--max-new-tokens`` only.
    """
    settings = clean_settings(settings)
    msgs = clean_messages(messages)
    check_cap(settings, max_new_tokens)
    context = engine.context_length
    if context is None:
        return msgs, settings
    try:
        prompt_tokens = engine.prompt_tokens(msgs, settings.thinking)
    except Exception:  # a conversation the format can't render: generation fails and saves that error
        return msgs, settings
    check_context(settings, prompt_tokens, engine.forced_tokens(settings), context)
    return msgs, settings
