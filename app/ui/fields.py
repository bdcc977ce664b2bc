"""Input components several tabs build alike: number boxes whose range check names the box, the problem-set
file and the run / cancel / past-reports controls of the report tabs (Sweep, Probe).

Gradio's ``gr.Number`` checks ``minimum``/``maximum`` itself and says only "Value -5 is less than minimum value
0." -- no field, no fix. :func:`WholeNumber` makes the same box (``precision=0``) whose refusal names its label,
the allowed range and the value given. It is a ``gr.Number`` with its own ``preprocess``, not a subclass: a
subclass would make Gradio write a ``.pyi`` stub next to this file at import time (a read-only install would
fail to start). Knows nothing of any one tab.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MethodType
from typing import Any

import gradio as gr

from app.domain import setting_range
from app.ui.refusal import refusal


def _shown(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def _preprocess(box: gr.Number, payload: float | None) -> float | int | None:
    if payload is not None:
        name = box.label or "This number"
        if box.minimum is not None and payload < box.minimum:
            raise refusal(f"{name} must be at least {_shown(box.minimum)} (you gave {_shown(payload)}).")
        if box.maximum is not None and payload > box.maximum:
            raise refusal(f"{name} must be at most {_shown(box.maximum)} (you gave {_shown(payload)}).")
    return gr.Number.preprocess(box, payload)


def WholeNumber(value: Any = None, *, label: str | None = None, **kwargs: Any) -> gr.Number:  # noqa: N802 - reads as a component
    """A ``gr.Number(precision=0)`` whose out-of-range message reads "Max answer tokens must be at least 1 (you
    gave 0)."."""
    kwargs.setdefault("precision", 0)
    box = gr.Number(value, label=label, **kwargs)
    box.preprocess = MethodType(_preprocess, box)  # type: ignore[method-assign]
    return box


def SettingSlider(name: str, value: float, *, step: float, label: str, **kwargs: Any) -> gr.Slider:  # noqa: N802
    """A slider over the declared range of the :class:`GenerationSettings` field ``name`` (``app.domain``'s
    ``Range``, the one validation and the CLI read): an open lower end starts one ``step`` above it."""
    allowed = setting_range(name)
    if allowed.high is None:
        raise ValueError(f"{name} has no upper end: a slider needs one")
    low = allowed.low + step if allowed.low_open else allowed.low
    return gr.Slider(low, allowed.high, value=value, step=step, label=label, **kwargs)


def SettingNumber(name: str, value: float | None, *, label: str, **kwargs: Any) -> gr.Number:  # noqa: N802
    """A :func:`WholeNumber` box bounded by the declared range of the :class:`GenerationSettings` field ``name``."""
    allowed = setting_range(name)
    return WholeNumber(value, label=label, minimum=allowed.low, maximum=allowed.high, **kwargs)


def problem_file() -> gr.File:
    """The problem-set upload of a tab that runs a problem set (JSONL; empty = the bundled GSM8K sample)."""
    return gr.File(
        label="Problem set (JSONL with question + answer); empty = bundled GSM8K sample",
        file_types=[".jsonl"],
        type="filepath",
    )


@dataclass(frozen=True)
class ReportControls:
    """A report tab's buttons: run, cancel, and reopening a past report (its list, refresh, open)."""

    run: gr.Button
    stop: gr.Button
    past: gr.Dropdown
    refresh: gr.Button
    reopen: gr.Button


def report_controls(what: str, prefix: str, choices: list[Any]) -> ReportControls:
    """Run / Cancel, then the past reports' list with Refresh and Open; ``prefix`` makes the element ids."""
    with gr.Row():
        run = gr.Button(f"Run {what}", variant="primary", elem_id=f"tl-{prefix}-run")
        stop = gr.Button("Cancel", variant="stop", elem_id=f"tl-{prefix}-cancel")
    with gr.Row():
        past = gr.Dropdown(choices=choices, value=None, label=f"Past {what}s", allow_custom_value=True, scale=3)
        refresh = gr.Button("Refresh list", scale=1)
        reopen = gr.Button("Open", scale=1, elem_id=f"tl-{prefix}-open")
    return ReportControls(run, stop, past, refresh, reopen)
