"""What a tab hands back to ``build_demo``: page-load hooks, registered there with the public ``demo.load``.

A tab's ``build_tab(rt)`` returns a list of :class:`OnLoad` (or None); ``app.ui.app.build_demo`` registers each
on the whole page once the Blocks is built, so no tab reaches for Gradio's internal root block.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr


@dataclass(frozen=True)
class OnLoad:
    """``fn(*inputs) -> outputs`` to run each time the page loads (private: no API endpoint)."""

    fn: Callable[..., Any]
    inputs: Sequence[gr.components.Component] | None
    outputs: Sequence[gr.components.Component]

    def register(self, demo: gr.Blocks) -> None:
        demo.load(self.fn, self.inputs, self.outputs, api_visibility="private")
