"""What a tab hands back to ``build_demo``: page-load and tab-select hooks, registered there with public APIs.

A tab's ``build_tab(rt)`` returns a list of :class:`OnLoad` / :class:`OnTabSelect` (or None);
``app.ui.app.build_demo`` registers each load hook on the whole page (``demo.load``) and each select hook on the
tab it built (``tab.select``), so no tab reaches for Gradio's internal context or root block.
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


@dataclass(frozen=True)
class OnTabSelect:
    """``fn(*inputs) -> outputs`` each time the user opens the tab, then each ``(fn, inputs, outputs)`` of
    ``then`` in turn (private: no API endpoint)."""

    fn: Callable[..., Any]
    inputs: Sequence[gr.components.Component] | None
    outputs: Sequence[gr.components.Component]
    then: Sequence[tuple[Callable[..., Any], Sequence[gr.components.Component] | None, Any]] = ()

    def register(self, tab: gr.Tab) -> None:
        event = tab.select(self.fn, self.inputs, self.outputs, api_visibility="private")
        for fn, inputs, outputs in self.then:
            event = event.then(fn, inputs, outputs, api_visibility="private")
