"""Who is asking: the one reading of a Gradio request's login, for every tab.

:func:`login_of` is the ``--auth`` login (None without one: a form field may then say who annotates);
:func:`user_of` is what a run records as its creator and what may delete it (``local`` without a login).
"""

from __future__ import annotations

import gradio as gr

from app.services.ownership import user_name


def login_of(request: gr.Request | None) -> str | None:
    """The ``--auth`` login of the request, or None when nobody logged in (or there is no request)."""
    return getattr(request, "username", None) if request is not None else None


def user_of(request: gr.Request | None) -> str:
    """Who is asking: the ``--auth`` login, or ``local`` without one (what runs record as their creator)."""
    return user_name(login_of(request))
