"""The Blocks app: the model header above one tab per view. Importable without launching anything.

Each tab is a module exposing ``build_tab(rt)``, listed in :data:`TABS`; it may return page-load hooks
(``app.ui.page.OnLoad``, registered with ``demo.load``) and tab-select hooks (``OnTabSelect``, on its tab). Launching, queueing and auth live in
``server.py``.
"""

from __future__ import annotations

import importlib

import gradio as gr

from app.services.runtime import Runtime
from app.ui.input_guard import guard_inputs
from app.ui.page import OnLoad, OnTabSelect
from app.ui.render import header_markdown
from app.ui.security import exposure_warning

#: (tab title, module with ``build_tab(rt)``), in display order.
TABS: tuple[tuple[str, str], ...] = (
    ("Playground", "app.ui.playground"),
    ("History", "app.ui.history"),
    ("Self-consistency", "app.ui.consistency"),
    ("Compare", "app.ui.compare"),
    ("Sweep", "app.ui.sweep"),
    ("Probe", "app.ui.probe"),
    ("Annotate", "app.ui.annotate"),
    ("Export", "app.ui.export_tab"),
)

CSS = """
#tracelab-header blockquote { margin: 0.4em 0; }
#playground-stats, #history-status { min-height: 1.5em; font-size: 0.92em; }
"""


def build_demo(rt: Runtime) -> gr.Blocks:
    """The whole app for one runtime: header, then the tabs. Call ``server.serve`` to run it."""
    hooks: list[OnLoad] = []
    with gr.Blocks(title="tracelab", analytics_enabled=False) as demo:
        header = gr.Markdown(header_markdown(rt.header()), elem_id="tracelab-header")
        if rt.settings.server:  # the server may come up (or go down) after start: re-check on each page load
            demo.load(lambda: header_markdown(rt.header()), None, header, api_visibility="private")
        warning = exposure_warning(rt.settings)
        if warning:  # stays on the page: everyone who opens it sees that it is open to all
            gr.Markdown(f"> ⚠️ **Open to anyone.** {warning}", elem_id="tracelab-exposure")  # our own words
        with gr.Tabs():
            for title, name in TABS:
                module = importlib.import_module(name)
                with gr.Tab(title, id=name.rsplit(".", 1)[-1]) as tab:
                    for hook in module.build_tab(rt) or []:
                        if isinstance(hook, OnTabSelect):
                            hook.register(tab)
                        else:
                            hooks.append(hook)
        for hook in hooks:
            hook.register(demo)
    return guard_inputs(demo)  # no bad value reaches anyone as a Python exception name
