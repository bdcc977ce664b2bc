"""Pure view helpers: samples, stats and the model header as safe chat messages and markdown, and the shared
HTML of the analysis tabs (sample cards, status lines, their CSS).

Every tab renders traces through these functions, so a trace looks the same in the Playground, in History
and in the other views. Everything a model or a person wrote is escaped first, by one of two functions:

* :func:`safe_text` for **markdown** (chat messages, ``gr.Markdown``): HTML escaped, markdown kept;
* :func:`html_text` for **HTML** (``gr.HTML``): the same, and ``$``/``{``/``}`` too, so ``gr.HTML``'s
  ``${...}``/``{{...}}`` templating cannot evaluate it.

So a ``<script>`` or an ``<img onerror=...>`` in a trace renders as visible characters and runs nothing.
Knows nothing about the store, the engine or event wiring; it reads plain records (``SampleResult``) only.
"""

from __future__ import annotations

import re
from typing import Any

import gradio as gr

from app.domain import GenerationSettings, SampleResult

THINKING_TITLE = "Thinking…"


def safe_text(text: str | None) -> str:
    """Markdown that shows ``text`` exactly as written -- the one function every view renders a prompt, a trace
    or any other model or user text through.

    A trace is evidence, so nothing in it is interpreted: every ASCII punctuation character outside code becomes
    a numeric entity, so ``*``/``_`` make no emphasis (``${7*7}`` stays ``${7*7}``), ``![x](http://…)`` makes
    no image and fetches nothing, ``<script>`` is characters, ``#``/``-``/``1.``/``>`` at a line start make no
    heading, list or quote, and ``$…$`` is shown as written rather than typeset. Leading indentation becomes
    no-break spaces, so it shows and never turns a paragraph into a code block. Code (fenced blocks, inline
    spans) is emitted as our own ``<pre><code>``/``<code>`` with the same entities. Misjudging where code starts
    only changes how text looks, never lets markup through: every character is escaped either way.
    """
    lines = (text or "").split("\n")
    out: list[str] = []
    prose: list[str] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None or (fence.group(1)[0] == "`" and "`" in fence.group(2)):
            prose.append(lines[i])
            i += 1
            continue
        marker = fence.group(1)
        close = re.compile(rf"^ {{0,3}}{re.escape(marker[0])}{{{len(marker)},}}\s*$")
        end = i + 1
        while end < len(lines) and not close.match(lines[end]):
            end += 1  # an unclosed fence runs to the end, as in CommonMark (and while streaming)
        if prose:
            out.append(_inline(_keep_indent("\n".join(prose))))
            prose = []
        out.append(f"<pre><code>{_literal(chr(10).join(lines[i + 1 : end]))}</code></pre>")
        i = end + 1
    if prose:
        out.append(_inline(_keep_indent("\n".join(prose))))
    return "\n".join(out)


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_PUNCTUATION = re.compile(r"[!-/:-@\[-`{-~]")
_TICKS = re.compile(r"`+")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


def _literal(code: str) -> str:
    """Every ASCII punctuation character as a numeric entity: inert as HTML and as markdown."""
    return _PUNCTUATION.sub(lambda m: f"&#{ord(m.group())};", code)


def _inline(text: str) -> str:
    """Prose as literal characters; CommonMark code spans (matching backtick runs, within a paragraph) as ``<code>``."""
    out: list[str] = []
    start = i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and _PUNCTUATION.match(text[i + 1]):
            i += 2  # a backslash before punctuation: both shown as written
            continue
        if text[i] != "`":
            i += 1
            continue
        opening = _TICKS.match(text, i)
        assert opening is not None
        closing = _TICKS.search(text, opening.end())
        while closing is not None and len(closing.group()) != len(opening.group()):
            closing = _TICKS.search(text, closing.end())
        if closing is None or _BLANK_LINE.search(text, opening.end(), closing.start()):
            i = opening.end()  # no matching run: the backticks are literal
            continue
        code = text[opening.end() : closing.start()].replace("\n", " ")
        if len(code) > 2 and code[0] == code[-1] == " " and code.strip():
            code = code[1:-1]
        out += [_prose(text[start:i]), f"<code>{_literal(code)}</code>"]
        start = i = closing.end()
    out.append(_prose(text[start:]))
    return "".join(out)


_INDENT = re.compile(r"^[ \t]+", re.MULTILINE)


def _prose(text: str) -> str:
    return _literal(text)


def _keep_indent(text: str) -> str:
    """Each line's leading spaces and tabs as no-break spaces: shown as written, never a markdown code block."""
    return _INDENT.sub(lambda m: m.group().replace("\t", "    ").replace(" ", "\u00a0"), text)


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def thinking_seconds(sample: SampleResult) -> float:
    """How long the sample thought: until the end delimiter, or the whole run if it never got there."""
    return sample.thinking_seconds if sample.thinking_seconds is not None else sample.seconds


def thinking_title(sample: SampleResult) -> str:
    """``Thought for 3.2 s · 41 tokens``: the title of a finished thinking block."""
    return f"Thought for {thinking_seconds(sample):.1f} s · {sample.thinking_tokens} tokens"


def thinking_message(sample: SampleResult, *, pending: bool = False) -> gr.ChatMessage:
    """The collapsible thinking block: open with a spinner while ``pending``, closed with its numbers after."""
    body = safe_text(sample.thinking) or "…"
    if pending:
        metadata: dict[str, Any] = {"title": THINKING_TITLE, "status": "pending", "duration": round(sample.seconds, 1)}
    else:
        metadata = {"title": thinking_title(sample), "status": "done"}
    return gr.ChatMessage(role="assistant", content=body, metadata=metadata)  # type: ignore[arg-type]


def stop_reason_words(sample: SampleResult, settings: GenerationSettings | None = None) -> str:
    """The stop reason as a person would say it, e.g. ``cut by budget at 256 tokens``."""
    reason = sample.stop_reason
    if reason == "end":
        return "finished on its own"
    if reason == "budget_cut":
        budget = settings.resolved_budget()[0] if settings is not None else sample.thinking_tokens
        return f"cut by budget at {budget} tokens"
    if reason == "max_tokens":
        limit = settings.max_answer_tokens if settings is not None else sample.answer_tokens
        return f"hit the answer limit of {limit} tokens"
    if reason == "user_cut":
        return f"thinking stopped by you at {sample.thinking_tokens} tokens (user_cut)"
    if reason == "cancelled":
        return "stopped by you (cancelled)"
    if reason == "error":
        return f"failed: {sample.error or 'unknown error'}"
    return reason


def stats_markdown(sample: SampleResult, settings: GenerationSettings | None = None) -> str:
    """One line of the run's numbers: tokens, time to first token, thinking time, speed, stop reason."""
    parts = [
        f"**{sample.thinking_tokens}** thinking tokens",
        f"**{sample.answer_tokens}** answer tokens",
        f"first token {_seconds(sample.time_to_first_token)}",
        f"thought {_seconds(sample.thinking_seconds)}",
        f"{sample.tokens_per_second:.1f} tokens/s",
    ]
    if sample.continuations:
        word = settings.continuation if settings is not None else "continuation"
        parts.append(f"{sample.continuations} × “{safe_text(word)}”")
    parts.append(safe_text(stop_reason_words(sample, settings)))
    return " · ".join(parts)


def trace_messages(
    sample: SampleResult,
    *,
    pending: bool = False,
    stats: bool = False,
    settings: GenerationSettings | None = None,
    title: str | None = None,
) -> list[gr.ChatMessage]:
    """A sample as chat messages: the collapsible thinking block, then the answer, then (``stats``) its numbers.

    ``pending=True`` means the model is still thinking: the block is open with a spinner. A sample that
    never thought (thinking off) has no block. ``title`` prefixes a bold line, e.g. "Sample 2 of 5".
    """
    messages: list[gr.ChatMessage] = []
    if title:
        messages.append(gr.ChatMessage(role="assistant", content=f"**{safe_text(title)}**"))
    if pending or sample.thinking or sample.thinking_tokens:
        messages.append(thinking_message(sample, pending=pending))
    if sample.answer:
        messages.append(gr.ChatMessage(role="assistant", content=safe_text(sample.answer)))
    if stats:
        messages.append(gr.ChatMessage(role="assistant", content="> " + stats_markdown(sample, settings)))
    return messages


def empty_sample() -> SampleResult:
    """A sample with nothing in it yet: the live view of a run that just started."""
    return SampleResult(
        index=0, raw_text="", thinking="", answer="", thinking_tokens=0, answer_tokens=0, stop_reason="end"
    )


def user_message(text: str) -> gr.ChatMessage:
    return gr.ChatMessage(role="user", content=safe_text(text))


def conversation_messages(messages: list[dict[str, str]]) -> list[gr.ChatMessage]:
    """Stored context messages (earlier turns and the prompt) as escaped chat messages."""
    out = []
    for m in messages:
        role = m.get("role", "user")
        content = safe_text(m.get("content", ""))
        if role == "system":
            out.append(gr.ChatMessage(role="assistant", content=content, metadata={"title": "System prompt"}))
        else:
            out.append(gr.ChatMessage(role="assistant" if role == "assistant" else "user", content=content))
    return out


def _device_words(device: str) -> str:
    if device.startswith("cuda"):
        return f"CUDA ({safe_text(device)})"
    if device.startswith("mps"):
        return "Apple MPS"
    return device.upper() if device else "unknown device"


_PRECISION_WORDS = {
    "int4": "int4 (torch CPU kernel, group 32)",
    "nf4": "NF4 (bitsandbytes 4-bit)",
    "int8": "int8 (bitsandbytes 8-bit)",
}


def _precision_words(info: dict[str, Any]) -> str:
    """How the weights run: ``int4 (…)``, ``NF4 (bitsandbytes 4-bit)``, ``int8 (…)``, ``bf16`` or ``fp32``."""
    precision = str(info.get("precision") or info.get("dtype") or "?")
    return _PRECISION_WORDS.get(precision, precision)


def header_markdown(info: dict[str, Any]) -> str:
    """The header: which model and format are loaded, on which device, how quantised; a plain warning for demos."""
    model = safe_text(str(info.get("model", "?")))
    line = (
        f"**Model** {model} · **format** {safe_text(str(info.get('format', '?')))}"
        f" · **device** {_device_words(str(info.get('device', '')))}"
        f" · **precision** {safe_text(_precision_words(info))}"
    )
    if info.get("server"):  # a remote engine: the weights, device and quantisation are the server's
        served = safe_text(str(info.get("server_model") or "?"))
        line = (
            f"**Model** {model} · **format** {safe_text(str(info.get('format', '?')))}"
            f" · **server** {safe_text(str(info['server']))} (serving {served})"
        )
    out = ["## tracelab — a playground for reasoning models", line]
    if info.get("server_error"):
        out.append(f"> **Inference server unavailable.** {safe_text(str(info['server_error']))}")
    if info.get("source") == "tiny":
        out.append(
            "> **Test model.** Random weights, two layers: it writes gibberish quickly. It exists for tests; "
            "start a real model with `python -m app serve --model Qwen/Qwen3-4B`."
        )
    elif info.get("small_demo"):
        out.append(
            "> **Small demo model.** SmolLM2-135M is a small model that was never trained to reason: the app "
            "*asks* it to think between think tags, so expect short, often wrong traces. For real reasoning "
            "start one, e.g. `python -m app serve --model Qwen/Qwen3-4B --quantize 4bit` (NF4; on a GPU or a CPU)."
        )
    elif not info.get("trained_to_think", True):
        out.append(
            "> This model was not trained to think; its thinking comes from a prompt. Reasoning models such as "
            "`Qwen/Qwen3-4B` show what thinking budgets really do."
        )
    return "\n\n".join(out)


# --- HTML shared by the analysis tabs (self-consistency, compare, sweep, and new ones) -----------

CARD_CSS = """
.tl-summary { font-size: 1.05em; margin: 4px 0; }
.tl-cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 10px; }
.tl-card { border: 1px solid #cfd8dc; border-left: 6px solid #90a4ae; border-radius: 6px; padding: 8px 10px; }
.tl-card.tl-correct { border-left-color: #2e7d32; }
.tl-card.tl-wrong { border-left-color: #c62828; }
.tl-head { display: flex; gap: 8px; align-items: baseline; flex-wrap: wrap; }
.tl-ans { font-family: monospace; font-weight: 600; overflow-wrap: anywhere; }
.tl-badge { font-size: 0.8em; padding: 0 6px; border-radius: 8px; background: #e3f2fd; }
.tl-meta { font-size: 0.85em; color: #607d8b; margin: 4px 0; }
.tl-text { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 0.9em; max-height: 320px; overflow: auto; }
.tl-sbs { width: 100%; border-collapse: collapse; table-layout: fixed; }
.tl-sbs td, .tl-sbs th { border: 1px solid #eceff1; padding: 4px 6px; vertical-align: top; white-space: pre-wrap;
  overflow-wrap: anywhere; font-size: 0.9em; }
.tl-sbs tr.tl-equal td { color: #607d8b; }
.tl-sbs tr.tl-replace td { background: #fffde7; }
.tl-sbs tr.tl-delete td:first-child, .tl-sbs tr.tl-insert td:last-child { background: #fce4ec; }
.tl-sbs del { background: #ffcdd2; text-decoration: line-through; }
.tl-sbs ins { background: #c8e6c9; text-decoration: none; }
"""


def html_text(text: str | None) -> str:
    """Model output as inert HTML text for a ``gr.HTML``: :func:`safe_text`, which already writes ``$``/``{``/``}``
    as entities, so the HTML component's ``${...}``/``{{...}}`` templating can't evaluate it."""
    return safe_text(text)


def status_html(text: str) -> str:
    """A one-line status in the summary's place while a run is queued, running or stopped early."""
    return f"<div class='tl-summary'>{html_text(text)}</div>"


def card_html(
    sample: SampleResult,
    *,
    title: str,
    data: str,
    correct: bool | None = None,
    badge: str = "",
    meta: str = "",
    thinking: bool = True,
) -> str:
    """One sample as a card (inside :func:`cards_html`): title, extracted answer, ✓/✗ against a gold answer,
    token counts, the thinking collapsed (or "thinking off") and the answer.

    ``data`` is the card's ``data-*`` attribute (numbers only, e.g. ``data-sample='3'``), ``badge`` extra HTML
    after the mark, ``meta`` extra escaped text after the numbers. Every model text is escaped here.
    """
    state = "" if correct is None else (" tl-correct" if correct else " tl-wrong")
    mark = "" if correct is None else ("✓" if correct else "✗")
    answer = html_text(sample.extracted_answer) if sample.extracted_answer is not None else "<i>no answer</i>"
    block = (
        f"<details><summary>Thinking ({sample.thinking_tokens} tokens)</summary>"
        f"<div class='tl-text'>{html_text(sample.thinking) or '<i>(no thinking)</i>'}</div></details>"
        if thinking
        else "<div class='tl-meta'>thinking off</div>"
    )
    return (
        f"<div class='tl-card{state}' {data}>"
        f"<div class='tl-head'><b>{html_text(title)}</b><span class='tl-ans'>{answer}</span>{mark}{badge}</div>"
        f"<div class='tl-meta'>{sample.thinking_tokens} thinking + {sample.answer_tokens} answer tokens · "
        f"{html_text(sample.stop_reason)} · {sample.seconds:.1f} s{meta}</div>"
        f"{block}<div class='tl-text'>{html_text(sample.answer)}</div></div>"
    )


def cards_html(cards: list[str]) -> str:
    """Cards from :func:`card_html` in the responsive grid."""
    return "<div class='tl-cards'>" + "".join(cards) + "</div>"
