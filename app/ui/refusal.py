"""How a refused input leaves a handler: one ``gr.Error`` line on the page and one line in the server log.

Gradio prints a full traceback for every ``gr.Error`` unless it is made with ``print_exception=False``; a
refusal is the user's mistake, not the program's, so :func:`refusal` logs it in one line (INFO) and tells Gradio
to print nothing. Real errors keep their traceback (``app.ui.running.user_error`` logs them). Any tab may use it.
"""

from __future__ import annotations

import logging

import gradio as gr

__all__ = ["refusal"]

log = logging.getLogger("app.ui")


def refusal(message: str) -> gr.Error:
    """The ``gr.Error`` to raise for a user's mistake: ``message`` on the page, one log line, no traceback."""
    log.info("refused: %s", message.splitlines()[0] if message else message)
    return gr.Error(message, print_exception=False)
