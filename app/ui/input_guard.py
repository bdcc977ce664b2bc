"""Every input a handler takes is read before Gradio's own preprocessing, so no bad value reaches the user as a
Python exception name.

Gradio preprocesses each input with the component's ``preprocess``; a value it can't handle (JSON ``Infinity``
for a whole number, a string for a run number) raises a plain Python exception there, and Gradio answers
"Original error: OverflowError: cannot convert float infinity to integer". :func:`guard_inputs` wraps the
``preprocess`` of every input component of a built app once: a number box or slider first checks that it got a
finite number (not text, a list, true/false, ``NaN`` or ``Infinity``), a radio or single-choice dropdown that it
got one of its choices (listed in the refusal), and anything else ``preprocess`` raises
becomes one sentence naming the field. Both are :func:`app.ui.refusal.refusal` lines (one log line, no
traceback). Knows nothing of any one tab.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import gradio as gr

from app.ui.refusal import refusal

__all__ = ["choice_refusal", "field_name", "guard_inputs", "number_refusal"]

_JSON_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "true/false"),
    (str, "text"),
    (list, "a list"),
    (dict, "an object"),
)


def field_name(block: Any) -> str:
    """How a refusal names an input: its label, else its element id, else its kind."""
    label = getattr(block, "label", None) or getattr(block, "elem_id", None)
    return str(label) if label else f"The {block.get_block_name()} input"


def _shown(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bounds(block: Any) -> str:
    low, high = getattr(block, "minimum", None), getattr(block, "maximum", None)
    if low is not None and high is not None:
        return f" from {low:g} to {high:g}"
    if low is not None:
        return f" of at least {low:g}"
    return f" of at most {high:g}" if high is not None else ""


def number_refusal(block: Any, payload: Any) -> str | None:
    """Why ``payload`` is no value for the number box or slider ``block`` (None when it is a finite number, or
    an empty number box)."""
    if payload is None and isinstance(block, gr.Number):
        return None
    kind = next((name for cls, name in _JSON_KINDS if isinstance(payload, cls)), None)
    if payload is None:
        kind = "nothing"
    if kind is not None or not isinstance(payload, int | float):
        return f"{field_name(block)} takes a number{_bounds(block)}, not {kind or type(payload).__name__}."
    if not math.isfinite(payload):
        shown = "NaN" if math.isnan(payload) else ("-Infinity" if payload < 0 else "Infinity")
        return f"{field_name(block)} takes a finite number{_bounds(block)}, not {shown}."
    low, high = getattr(block, "minimum", None), getattr(block, "maximum", None)  # Gradio's words name no field
    if low is not None and payload < low:
        return f"{field_name(block)} must be at least {_number(low)} (you gave {_number(payload)})."
    if high is not None and payload > high:
        return f"{field_name(block)} must be at most {_number(high)} (you gave {_number(payload)})."
    return None


def _number(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def choice_refusal(block: Any, payload: Any) -> str | None:
    """Why ``payload`` is not one of a radio's (or single-choice dropdown's) choices; None when it is, or when the
    field takes other values too. (Gradio's own words: "Value: 'x' (type: <class 'str'>) is not in the list…".)"""
    if getattr(block, "allow_custom_value", False) or getattr(block, "multiselect", False) or payload is None:
        return None
    values = [c[1] if isinstance(c, tuple | list) else c for c in getattr(block, "choices", None) or []]
    if not values or payload in values:
        return None
    listed = ", ".join(str(v) for v in values[:12]) + (", …" if len(values) > 12 else "")
    return f"{field_name(block)} takes one of: {listed} (you gave {_shown(payload)})."


def _guarded(block: Any, preprocess: Callable[[Any], Any]) -> Callable[[Any], Any]:
    number = isinstance(block, gr.Number | gr.Slider)
    choice = isinstance(block, gr.Radio | gr.Dropdown)

    def guarded(payload: Any) -> Any:
        if number and (problem := number_refusal(block, payload)) is not None:
            raise refusal(problem)
        if choice and (problem := choice_refusal(block, payload)) is not None:
            raise refusal(problem)
        try:
            return preprocess(payload)
        except gr.Error:
            raise
        except Exception:  # Gradio's own reading failed: the value is not one this field takes
            raise refusal(
                f"{field_name(block)} can't take {_shown(payload)}: send a value of the kind this field shows "
                "(the API page lists each one)."
            ) from None

    return guarded


class _CheckedModel:
    """A component's ``data_model`` (Gradio validates a file input against it before ``preprocess``): a value
    that isn't one is refused in one sentence naming the field instead of pydantic's "validation error for
    FileData"; everything else is the model's own."""

    def __init__(self, block: Any, model: Any) -> None:
        self._block, self._model = block, model

    def model_validate(self, value: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._model.model_validate(value, *args, **kwargs)
        except Exception:
            raise refusal(
                f"{field_name(self._block)} can't take {_shown(value)}: upload a file there (over the API, a file "
                'goes as {"path": ..., "meta": {"_type": "gradio.FileData"}}).'
            ) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def guard_inputs(demo: gr.Blocks) -> gr.Blocks:
    """Wrap the ``preprocess`` of every input component of ``demo`` (once each); returns ``demo``."""
    seen: set[int] = set()
    for fn in demo.fns.values():
        for block in fn.inputs:
            if not isinstance(block, gr.components.Component) or id(block) in seen or block.stateful:
                continue
            seen.add(id(block))
            block.preprocess = _guarded(block, block.preprocess)  # type: ignore[method-assign]
            if getattr(block, "data_model", None) is not None:
                block.data_model = _CheckedModel(block, block.data_model)
    return demo
