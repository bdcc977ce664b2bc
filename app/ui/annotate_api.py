"""Named API endpoints for labelling, so every click in the Annotate tab can be scripted with ``gradio_client``.

Each endpoint is ``gr.api`` over one ``app.services.labeling`` function and returns JSON (dates as ISO strings).
With Gradio auth on, the logged-in user is the annotator whatever ``annotator`` says; without it ``annotator``
is required. A refused action raises ``gr.Error`` with the store's message (a client sees ``AppError``).

Endpoints: label_queue, open_sample, label_step, label_history, merge_steps, split_step, set_verdict,
add_preference, add_ranking, agreement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import Any

import gradio as gr

from app.errors import StoreError
from app.services import auto_labels, labeling
from app.services.runtime import Runtime


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
    except (StoreError, ValueError) as exc:
        raise gr.Error(str(exc)) from exc


def _who(annotator: str, request: gr.Request | None) -> str:
    return labeling.resolve_annotator(annotator, getattr(request, "username", None))


def register(rt: Runtime) -> None:
    """Register the labelling endpoints on the Blocks being built (call inside its ``with`` block)."""
    store = rt.db
    endpoints: list[Callable[..., Any]] = []

    def endpoint(fn: Callable[..., Any]) -> Callable[..., Any]:
        endpoints.append(fn)
        return fn

    @endpoint
    def label_queue(
        annotator: str = "",
        run_id: int | None = None,
        model: str = "",
        prompt_search: str = "",
        unlabelled_first: bool = True,
        request: gr.Request = None,  # type: ignore[assignment]
    ) -> dict:
        """Samples to label and the progress ("37 of 120 samples labelled"); empty annotator = labels by anyone."""
        name = getattr(request, "username", None) or annotator.strip() or None
        with refusals():
            queue = labeling.label_queue(
                store, name, run_id=run_id, model=model, prompt_search=prompt_search, unlabelled_first=unlabelled_first
            )
        return jsonable(queue)

    @endpoint
    def open_sample(sample_id: int, annotator: str = "", request: gr.Request = None) -> dict:  # type: ignore[assignment]
        """The sample's prompt, text, steps (with step_id) and the annotator's current labels and verdict."""
        with refusals():
            return jsonable(labeling.open_sample(store, sample_id, _who(annotator, request)))

    @endpoint
    def label_step(
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
                store, sample_id, step_id, name, rating, comment=comment, first_error=first_error
            )
            return {"label_id": label_id, "sample": jsonable(labeling.open_sample(store, sample_id, name))}

    @endpoint
    def label_history(step_id: int) -> list:
        """Every label the step was ever given, oldest first."""
        with refusals():
            return jsonable(labeling.label_history(store, step_id))

    @endpoint
    def merge_steps(sample_id: int, step_id: int, next_step_id: int | None = None) -> dict:
        """Merge a step with the next one; labels on the two are kept in history, others untouched."""
        with refusals():
            return {"step_id": labeling.merge_steps(store, sample_id, step_id, next_step_id)}

    @endpoint
    def split_step(sample_id: int, step_id: int, at: int | None = None, before_text: str = "") -> dict:
        """Split a step at character ``at`` or just before ``before_text``; returns the two new step ids."""
        with refusals():
            where: int | str = at if at is not None else before_text
            head, tail = labeling.split_step(store, sample_id, step_id, where)
            return {"step_ids": [head, tail]}

    @endpoint
    def set_verdict(sample_id: int, verdict: str = "correct", annotator: str = "", request: gr.Request = None) -> dict:  # type: ignore[assignment]
        """Whole-sample verdict: "correct", "incorrect" or "" (withdraw)."""
        with refusals():
            return {"verdict_id": labeling.set_verdict(store, sample_id, _who(annotator, request), verdict)}

    @endpoint
    def add_preference(
        chosen_sample_id: int,
        rejected_sample_id: int,
        annotator: str = "",
        reason: str = "",
        request: gr.Request = None,  # type: ignore[assignment]
    ) -> dict:
        """Record that one sample is better than another of the same prompt."""
        with refusals():
            name = _who(annotator, request)
            return {"preference_id": labeling.add_preference(store, chosen_sample_id, rejected_sample_id, name, reason)}

    @endpoint
    def add_ranking(
        sample_ids_best_first: list[int],
        annotator: str = "",
        reason: str = "",
        request: gr.Request = None,  # type: ignore[assignment]
    ) -> dict:
        """Record a ranking of samples of one prompt, best first (stored as its implied pairs)."""
        with refusals():
            group = labeling.add_ranking(store, sample_ids_best_first, _who(annotator, request), reason)
            return {"rank_group": group}

    @endpoint
    def agreement(sample_id: int | None = None) -> dict:
        """Cohen's kappa per annotator pair and the steps they disagree on (all samples, or one)."""
        with refusals():
            return jsonable(labeling.agreement(store, sample_id=sample_id))

    @endpoint
    def agreement_auto(sample_id: int | None = None) -> list:
        """Cohen's kappa of each annotator (and all pooled) against the automatic (auto:mc) hard step labels."""
        with refusals():
            return [jsonable(r) for r in auto_labels.human_vs_auto(store, sample_id)]

    @endpoint
    def auto_suggestions(sample_id: int) -> list:
        """The sample's current automatic step labels (suggestions; never a person's), in step order."""
        with refusals():
            found = auto_labels.suggestions(store, int(sample_id)).values()
            return [jsonable(r) for r in sorted(found, key=lambda r: r.step_index)]

    for fn in endpoints:
        gr.api(fn, api_name=fn.__name__)
