"""Number boxes whose range check names the field: the one kind of input Gradio refuses before a handler runs.

Gradio's ``gr.Number`` checks ``minimum``/``maximum`` itself and says only "Value -5 is less than minimum value
0." -- no field, no fix. :class:`WholeNumber` is the same box (same frontend: a template of ``gr.Number``) whose
refusal names its label, the allowed range and the value given. Knows nothing of any tab.
"""

from __future__ import annotations

from typing import Any

import gradio as gr


def _shown(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"

from gradio.events import Dependency

class WholeNumber(gr.Number):
    """``gr.Number(precision=0)`` whose out-of-range message reads "Max answer tokens must be at least 1 (you
    gave -5)."."""

    is_template = True  # rendered by gr.Number's own frontend

    def __init__(self, value: Any = None, *, label: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("precision", 0)
        super().__init__(value, label=label, **kwargs)

    def preprocess(self, payload: float | None) -> float | int | None:
        if payload is not None:
            name = self.label or "This number"
            if self.minimum is not None and payload < self.minimum:
                raise gr.Error(f"{name} must be at least {_shown(self.minimum)} (you gave {_shown(payload)}).")
            if self.maximum is not None and payload > self.maximum:
                raise gr.Error(f"{name} must be at most {_shown(self.maximum)} (you gave {_shown(payload)}).")
        return super().preprocess(payload)
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component