"""Named API endpoints for labelling, so every click in the Annotate tab can be scripted with ``gradio_client``.

Each endpoint is ``gr.api`` over one ``app.services.labeling`` function and returns JSON (dates as ISO strings).
With Gradio auth on, the logged-in user is the annotator whatever ``annotator`` says; without it ``annotator``
is required. A refused action raises ``gr.Error`` with the store's message (a client sees ``AppError``).

Endpoints: label_queue, open_sample, label_step, save_label, label_history, merge_steps, split_step, set_verdict,
add_preference, add_ranking, agreement.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import Any

import gradio as gr

from app.errors import DatabaseBusy, is_user_error
from app.services import agreement as agreement_service
from app.services import auto_labels, labeling
from app.services.runtime import Runtime
from app.ui.caller import login_of
from app.ui.control_values import as_id
from app.ui.refusal import refusal
from app.ui.running import user_error
from app.validation import clean_text


def jsonable(value: Any) -> Any:
    """Dataclasses, lists and dicts with datetimes -> JSON-ready values."""
    if is_dataclass(value) and not isinstance(value, type):
        value = value.to_dict() if hasattr(value, "to_dict") else asdict(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@contextmanager
def refusals() -> Iterator[None]:
    """Turn a refused action into ``gr.Error`` carrying the message (shown in the UI, raised in clients)."""
    try:
        yield
    except Exception as exc:
        raise user_error(exc) from exc


def _who(annotator: str, request: gr.Request | None) -> str:
    return labeling.resolve_annotator(annotator, login_of(request))


def _argument(name: str, kind: str, value: Any) -> Any:
    """One API argument as its annotated type, or a ``gr.Error`` naming it: API clients can send any JSON."""
    if kind == "str":
        return clean_text(value if isinstance(value, str) else "" if value is None else str(value))
    if kind == "bool":
        return bool(value)
    if kind in ("int", "int | None"):
        if value is None and kind == "int | None":
            return None
        try:
            return as_id(value, name.replace("_", " "))
        except Exception as exc:
            raise user_error(exc) from None
    if kind == "list[int]":
        if not isinstance(value, list):
            raise refusal(f"{name} must be a list of sample numbers, e.g. [3, 5, 4]")
        return [_argument(name, "int", v) for v in value]
    return value


def checked_arguments(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with every argument converted to its annotated type first (see :func:`_argument`)."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        for name, value in list(bound.arguments.items()):
            kind = signature.parameters[name].annotation
            if isinstance(kind, str):
                bound.arguments[name] = _argument(name, kind, value)
        return fn(*bound.args, **bound.kwargs)

    return wrapper


#: The endpoints, in the order they are registered (each a :class:`LabellingApi` method of that name).
ENDPOINTS = (
    "label_queue",
    "open_sample",
    "label_step",
    "save_label",
    "label_history",
    "merge_steps",
    "split_step",
    "set_verdict",
    "add_preference",
    "add_ranking",
    "agreement",
    "agreement_auto",
    "auto_suggestions",
)


class LabellingApi:
    """The labelling endpoints over one store: each method is one ``gr.api`` (its name the ``api_name``)."""

    def __init__(self, rt: Runtime) -> None:
        self.store = rt.db

    def label_queue(
        self,
        annotator: str = "",
        run_id: int | None = None,
        model: str = "",
        prompt_search: str = "",
        unlabelled_first: bool = True,
        request: gr.Request = None,  # type: ignore[assignment]
    ) -> dict:
        """Samples to label and the progress ("37 of 120 samples labelled"); empty annotator = labels by anyone."""
        name = login_of(request) or annotator.strip() or None
        with refusals():
            queue = labeling.label_queue(
                self.store,
                name,
                run_id=run_id,
                model=model,
                prompt_search=prompt_search,
                unlabelled_first=unlabelled_first,
            )
        return jsonable(queue)

    def open_sample(self, sample_id: int, annotator: str = "", request: gr.Request = None) -> dict:  # type: ignore[assignment]
        """The sample's prompt, text, steps (with step_id) and the annotator's current labels and verdict."""
        with refusals():
            return jsonable(labeling.open_sample(self.store, sample_id, _who(annotator, request)))

    def label_step(
        self,
        sample_id: int,
        step_id: int,
        rating: str = "+1",
        annotator: str = "",
        comment: str = "",
        first_error: bool = False,
        request: gr.Request = None,  # type: ignore[assignment]
    ) -> dict:
        """Rate a step +1 / 0 / -1 (first_error=True marks it -1 and stops the sample); returns the label id."""
        with refusals():
            name = _who(annotator, request)
            label_id = labeling.label_step(
                self.store, sample_id, step_id, name, rating, comment=comment, first_error=first_error
            )
            return {"label_id": label_id, "sample": jsonable(labeling.open_sample(self.store, sample_id, name))}

    def save_label(
        self,
        sample_id: int,
        step_id: int,
        rating: str = "+1",
        annotator: str = "",
        comment: str = "",
        first_error: bool = False,
        request: gr.Request = None,  # type: ignore[assignment]
    ) -> dict:
        """``label_step`` for the Annotate page's save queue: the outcome as data, never an exception.

        ``{"saved": true, "label_id"}``; a refusal ``{"saved": false, "retry": false, "message"}`` (the step was
        merged away, bad input: don't send it again); a passing failure ``{"saved": false, "retry": true,
        "message"}`` (the database is busy: send it again later)."""
        try:
            name = _who(annotator, request)
            label_id = labeling.label_step(
                self.store, sample_id, step_id, name, rating, comment=comment, first_error=first_error
            )
        except DatabaseBusy as exc:
            return {"saved": False, "retry": True, "message": str(exc)}
        except Exception as exc:  # noqa: BLE001 - the page shows the sentence; user_error logs a bug's traceback
            return {"saved": False, "retry": not is_user_error(exc), "message": user_error(exc).message}
        return {"saved": True, "label_id": label_id}

    def label_history(self, step_id: int) -> list:
        """Every label the step was ever given, oldest first."""
        with refusals():
            return jsonable(labeling.label_history(self.store, step_id))

    def merge_steps(self, sample_id: int, step_id: int, next_step_id: int | None = None) -> dict:
        """Merge a step with the next one; labels on the two are kept in history, others untouched."""
        with refusals():
            return {"step_id": labeling.merge_steps(self.store, sample_id, step_id, next_step_id)}

    def split_step(self, sample_id: int, step_id: int, at: int | None = None, before_text: str = "") -> dict:
        """Split a step at character ``at`` or just before ``before_text``; returns the two new step ids."""
        with refusals():
            where: int | str = at if at is not None else before_text
            head, tail = labeling.split_step(self.store, sample_id, step_id, where)
            return {"step_ids": [head, tail]}

    def set_verdict(
        self, sample_id: int, verdict: str = "correct", annotator: str = "", request: gr.Request = None
    ) -> dict:  # type: ignore[assignment]
        """Whole-sample verdict: "correct", "incorrect" or "" (withdraw)."""
        with refusals():
            return {"verdict_id": labeling.set_verdict(self.store, sample_id, _who(annotator, request), verdict)}

    def add_preference(
        self,
        chosen_sample_id: int,
        rejected_sample_id: int,
        annotator: str = "",
        reason: str = "",
        request: gr.Request = None,  # type: ignore[assignment]
    ) -> dict:
        """Record that one sample is better than another of the same prompt."""
        with refusals():
            name = _who(annotator, request)
            return {
                "preference_id": labeling.add_preference(self.store, chosen_sample_id, rejected_sample_id, name, reason)
            }

    def add_ranking(
        self,
        sample_ids_best_first: list[int],
        annotator: str = "",
        reason: str = "",
        request: gr.Request = None,  # type: ignore[assignment]
    ) -> dict:
        """Record a ranking of samples of one prompt, best first (stored as its implied pairs)."""
        with refusals():
            group = labeling.add_ranking(self.store, sample_ids_best_first, _who(annotator, request), reason)
            return {"rank_group": group}

    def agreement(self, sample_id: int | None = None) -> dict:
        """Cohen's kappa per annotator pair and the steps they disagree on (all samples, or one)."""
        with refusals():
            return jsonable(agreement_service.agreement(self.store, sample_id=sample_id))

    def agreement_auto(self, sample_id: int | None = None) -> list:
        """Cohen's kappa of each annotator (and all pooled) against the automatic (auto:mc) hard step labels."""
        with refusals():
            return [jsonable(r) for r in auto_labels.human_vs_auto(self.store, sample_id)]

    def auto_suggestions(self, sample_id: int) -> list:
        """The sample's current automatic step labels (suggestions; never a person's), in step order."""
        with refusals():
            found = auto_labels.suggestions(self.store, int(sample_id)).values()
            return [jsonable(r) for r in sorted(found, key=lambda r: r.step_index)]


def register(rt: Runtime) -> None:
    """Register the labelling endpoints on the Blocks being built (call inside its ``with`` block)."""
    api = LabellingApi(rt)
    for name in ENDPOINTS:
        gr.api(checked_arguments(getattr(api, name)), api_name=name)
