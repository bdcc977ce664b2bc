"""Number boxes whose range check names the box: the one kind of input Gradio refuses before a handler runs.

Gradio's ``gr.Number`` checks ``minimum``/``maximum`` itself and says only "Value -5 is less than minimum value
0." -- no field, no fix. :func:`WholeNumber` makes the same box (``precision=0``) whose refusal names its label,
the allowed range and the value given. It is a ``gr.Number`` with its own ``preprocess``, not a subclass: a
subclass would make Gradio write a ``.pyi`` stub next to this file at import time (a read-only install would
fail to start). Knows nothing of any tab.
"""

from __future__ import annotations

from types import MethodType
from typing import Any

import gradio as gr


def _shown(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def _preprocess(box: gr.Number, payload: float | None) -> float | int | None:
    if payload is not None:
        name = box.label or "This number"
        if box.minimum is not None and payload < box.minimum:
            raise gr.Error(f"{name} must be at least {_shown(box.minimum)} (you gave {_shown(payload)}).")
        if box.maximum is not None and payload > box.maximum:
            raise gr.Error(f"{name} must be at most {_shown(box.maximum)} (you gave {_shown(payload)}).")
    return gr.Number.preprocess(box, payload)


def WholeNumber(value: Any = None, *, label: str | None = None, **kwargs: Any) -> gr.Number:  # noqa: N802 - reads as a component
    """A ``gr.Number(precision=0)`` whose out-of-range message reads "Max answer tokens must be at least 1 (you
    gave 0)."."""
    kwargs.setdefault("precision", 0)
    box = gr.Number(value, label=label, **kwargs)
    box.preprocess = MethodType(_preprocess, box)  # type: ignore[method-assign]
    return box
