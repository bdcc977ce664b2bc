"""Reasoning formats: detection and prompt building, with small chat templates written for these tests."""

from __future__ import annotations

import pytest

from app.engine.reasoning_formats import REASONING_FORMATS, FormatError, build_prompt, detect_format, get_format

# Minimal templates that mimic each family's thinking switch (not the vendors' full templates).
QWEN3 = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)
SMOLLM3 = (
    "{% set flag = '/no_think' if enable_thinking is defined and enable_thinking is false else '/think' %}"
    "<|im_start|>system\n{{ flag }}<|im_end|>\n"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
R1 = (
    "{% for m in messages %}{% if m.role == 'user' %}<｜User｜>{{ m.content }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<｜Assistant｜><think>\n{% endif %}"
)
GRANITE = (
    "{% if thinking %}<|start_of_role|>system<|end_of_role|>granite: think in <think></think>, "
    "answer in <response></response>.<|end_of_text|>\n{% endif %}"
    "{% for m in messages %}<|start_of_role|>{{ m.role }}<|end_of_role|>{{ m.content }}<|end_of_text|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|start_of_role|>assistant<|end_of_role|>{% endif %}"
)
PHI4 = (
    "<|im_start|>system<|im_sep|>You are Phi, a language model trained by Microsoft. Think in <think> tags."
    "<|im_end|>{% for m in messages %}<|im_start|>{{ m.role }}<|im_sep|>{{ m.content }}<|im_end|>{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant<|im_sep|>{% endif %}"
)
PLAIN_CHAT = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture
def tok(smol_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smol_tokenizer_dir)


def _with(tok, template):
    tok.chat_template = template
    return tok


USER = [{"role": "user", "content": "What is 2+2?"}]


@pytest.mark.parametrize(
    ("template", "name", "expected"),
    [
        (QWEN3, "Qwen/Qwen3-4B", "qwen3"),
        (SMOLLM3, "HuggingFaceTB/SmolLM3-3B", "smollm3"),
        (R1, "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "deepseek-r1"),
        (GRANITE, "ibm-granite/granite-3.3-2b-instruct", "granite"),
        (PHI4, "microsoft/Phi-4-reasoning", "phi4-reasoning"),
        (PLAIN_CHAT, "HuggingFaceTB/SmolLM2-135M-Instruct", "prompted"),
        (None, "gpt2", "plain"),
    ],
)
def test_detects_the_family_from_the_template(template, name, expected):
    assert detect_format(template, name).name == expected


def test_qwen3_on_opens_think_and_off_closes_an_empty_block(tok):
    tok = _with(tok, QWEN3)
    on = build_prompt(REASONING_FORMATS["qwen3"], tok, USER, thinking=True)
    off = build_prompt(REASONING_FORMATS["qwen3"], tok, USER, thinking=False)
    assert on.endswith("<|im_start|>assistant\n<think>\n")
    assert off.endswith("<think>\n\n</think>\n\n")


def test_smollm3_uses_the_template_switch(tok):
    tok = _with(tok, SMOLLM3)
    assert "/no_think" in build_prompt(REASONING_FORMATS["smollm3"], tok, USER, thinking=False)
    on = build_prompt(REASONING_FORMATS["smollm3"], tok, USER, thinking=True)
    assert "/think" in on and on.endswith("<think>\n")


def test_r1_always_thinks_and_off_prefills_an_empty_block(tok):
    tok = _with(tok, R1)
    on = build_prompt(REASONING_FORMATS["deepseek-r1"], tok, USER, thinking=True)
    assert on.endswith("<｜Assistant｜><think>\n") and on.count("<think>") == 1  # not opened twice
    off = build_prompt(REASONING_FORMATS["deepseek-r1"], tok, USER, thinking=False)
    assert off.endswith("<think>\n\n</think>\n\n")


def test_granite_passes_thinking_kwarg(tok):
    tok = _with(tok, GRANITE)
    assert "think in <think>" in build_prompt(REASONING_FORMATS["granite"], tok, USER, thinking=True)
    assert "think in <think>" not in build_prompt(REASONING_FORMATS["granite"], tok, USER, thinking=False)
    assert get_format("granite").answer_open == "<response>"


def test_phi4_prefills_empty_block_when_off(tok):
    tok = _with(tok, PHI4)
    assert build_prompt(REASONING_FORMATS["phi4-reasoning"], tok, USER, thinking=False).endswith("</think>\n\n")


def test_prompted_asks_for_think_tags_and_opens_the_block(tok):
    tok = _with(tok, PLAIN_CHAT)
    on = build_prompt(REASONING_FORMATS["prompted"], tok, USER, thinking=True)
    assert "<think> and </think>" in on and on.endswith("<think>\n")
    off = build_prompt(REASONING_FORMATS["prompted"], tok, USER, thinking=False)
    assert "<think>" not in off


def test_plain_format_needs_no_template(tok):
    tok.chat_template = None
    prompt = build_prompt(REASONING_FORMATS["plain"], tok, USER, thinking=True)
    assert prompt.endswith("Assistant: <think>\n") and "User: What is 2+2?" in prompt
    with pytest.raises(FormatError, match="--format plain"):
        build_prompt(REASONING_FORMATS["prompted"], tok, USER, thinking=True)


def test_unknown_format_names_the_choices():
    with pytest.raises(FormatError, match="choose one of: qwen3"):
        get_format("llama-think")


def test_conversation_must_end_with_user(tok):
    with pytest.raises(FormatError, match="end with a user message"):
        build_prompt(
            REASONING_FORMATS["prompted"], _with(tok, PLAIN_CHAT), [{"role": "assistant", "content": "x"}], True
        )
