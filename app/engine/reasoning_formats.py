"""Reasoning formats: how each model family switches thinking on and off and what delimits it.

One small table of families, detected from the tokenizer's chat template (overridable by name),
and one function that builds the prompt text for a conversation. The prompt always ends where the
model's first generated token belongs: inside the thinking block when thinking is on (the open tag
is prefilled if the template does not already do it), after a closed empty block or straight in
the answer when it is off. Knows nothing about generation or budgets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from app.domain import Messages
from app.errors import InvalidInput

OffMode = Literal["template_kwarg", "prefill_empty", "no_think_flag", "plain"]

PROMPTED_SYSTEM = (
    "You are a careful assistant that thinks before answering. First reason step by step inside "
    "<think> and </think>, then give the final answer after </think>."
)


@dataclass(frozen=True)
class ReasoningFormat:
    """One family's thinking conventions.

    ``open_tag``/``close_tag`` delimit the thinking; ``answer_open``/``answer_close`` optionally wrap the
    answer (Granite 3.3's ``<response>``). ``on_kwargs``/``off_kwargs`` go to ``apply_chat_template``.
    ``off_mode`` says how thinking is turned off when the model has no native switch.
    """

    name: str
    description: str
    open_tag: str = "<think>"
    close_tag: str = "</think>"
    answer_open: str = ""
    answer_close: str = ""
    hybrid: bool = False
    always_thinks: bool = False
    on_kwargs: dict[str, Any] = field(default_factory=dict)
    off_kwargs: dict[str, Any] = field(default_factory=dict)
    off_mode: OffMode = "template_kwarg"
    system_prompt: str | None = None
    trained_to_think: bool = True


def _switch(key: str) -> dict[str, Any]:
    """A hybrid family's chat-template switch: ``key=True`` thinks, ``key=False`` answers straight away."""
    return {"hybrid": True, "on_kwargs": {key: True}, "off_kwargs": {key: False}}


REASONING_FORMATS: dict[str, ReasoningFormat] = {
    f.name: f
    for f in [
        ReasoningFormat(
            name="qwen3",
            description="Qwen3 hybrid: enable_thinking chat-template switch",
            **_switch("enable_thinking"),
        ),
        ReasoningFormat(
            name="smollm3",
            description="SmolLM3 hybrid: enable_thinking switch, /think and /no_think flags",
            **_switch("enable_thinking"),
        ),
        ReasoningFormat(
            name="deepseek-r1",
            description="DeepSeek-R1 distills: always think; 'off' prefills an empty think block",
            always_thinks=True,
            off_mode="prefill_empty",
        ),
        ReasoningFormat(
            name="granite",
            description="Granite 3.x: thinking=True chat-template switch",
            answer_open="<response>",
            answer_close="</response>",
            **_switch("thinking"),
        ),
        ReasoningFormat(
            name="phi4-reasoning",
            description="Phi-4-reasoning: always thinks; 'off' prefills an empty think block",
            always_thinks=True,
            off_mode="prefill_empty",
        ),
        ReasoningFormat(
            name="prompted",
            description="Any chat model never trained to think: a system prompt asks for <think>, the block is prefilled",
            off_mode="plain",
            system_prompt=PROMPTED_SYSTEM,
            trained_to_think=False,
        ),
        ReasoningFormat(
            name="plain",
            description="No chat template: a plain 'User:/Assistant:' prompt with a prefilled <think>",
            off_mode="plain",
            system_prompt=PROMPTED_SYSTEM,
            trained_to_think=False,
        ),
    ]
}


class FormatError(InvalidInput):
    """A format can't be used with this tokenizer; the message names the fix."""


def get_format(name: str) -> ReasoningFormat:
    try:
        return REASONING_FORMATS[name]
    except KeyError:
        raise FormatError(f"Unknown --format {name!r}; choose one of: {', '.join(REASONING_FORMATS)}") from None


def detect_format(chat_template: str | None, model_name: str = "") -> ReasoningFormat:
    """Pick the family from the chat template text (and, as a tie-breaker, the model's name)."""
    if not chat_template:
        return REASONING_FORMATS["plain"]
    template = chat_template
    lowered_name = model_name.lower()
    if "/no_think" in template or "smollm3" in lowered_name:
        return REASONING_FORMATS["smollm3"]
    if "enable_thinking" in template:
        return REASONING_FORMATS["qwen3"]
    if "<｜Assistant｜>" in template or "deepseek" in lowered_name and "</think>" in template:
        return REASONING_FORMATS["deepseek-r1"]
    if "thinking" in template and ("granite" in template.lower() or "granite" in lowered_name):
        return REASONING_FORMATS["granite"]
    if "<think>" in template and ("Phi" in template or "phi-4" in lowered_name):
        return REASONING_FORMATS["phi4-reasoning"]
    return REASONING_FORMATS["prompted"]


def _with_system(messages: Messages, system: str) -> Messages:
    if messages and messages[0].get("role") == "system":
        return [{"role": "system", "content": f"{messages[0]['content']}\n\n{system}"}, *messages[1:]]
    return [{"role": "system", "content": system}, *messages]


def _plain_prompt(messages: Messages) -> str:
    lines = []
    for message in messages:
        role = {"system": "System", "user": "User", "assistant": "Assistant"}.get(message["role"], message["role"])
        lines.append(f"{role}: {message['content']}")
    return "\n\n".join(lines) + "\n\nAssistant: "


def build_prompt(fmt: ReasoningFormat, tokenizer: Any, messages: Messages, thinking: bool) -> str:
    """Render ``messages`` for generation, ending where the model's first token belongs.

    Returns the prompt text; the caller tokenises it with ``add_special_tokens=False`` because the
    chat template already placed any BOS token.
    """
    if not messages or messages[-1].get("role") != "user":
        raise FormatError("The conversation must end with a user message")
    msgs = list(messages)
    if fmt.system_prompt and thinking:
        msgs = _with_system(msgs, fmt.system_prompt)
    if fmt.name == "plain":
        prompt = _plain_prompt(msgs)
    else:
        if not getattr(tokenizer, "chat_template", None):
            raise FormatError(
                "This model has no chat template; run it with --format plain to use a plain 'User:/Assistant:' prompt."
            )
        kwargs = fmt.on_kwargs if thinking else fmt.off_kwargs
        prompt = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, **kwargs)
    stripped = prompt.rstrip()
    if thinking:
        if not stripped.endswith(fmt.open_tag):
            prompt = prompt + fmt.open_tag + "\n"
        elif not prompt.endswith("\n"):
            prompt += "\n"
    elif fmt.off_mode == "prefill_empty" and not stripped.endswith(fmt.close_tag):
        prompt = prompt + f"{fmt.open_tag}\n\n{fmt.close_tag}\n\n"
    return prompt
