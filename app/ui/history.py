"""The History tab: a searchable, filterable table of past runs; open one to see it exactly as it was.

Layout, wiring and thin handlers over ``app.services.history`` (list, open, delete; the model menu); a run's
JSON is ``app.services.runs.run_json``, the same shape ``/generate`` returns.
API endpoints (``gradio_client``): ``list_history``, ``get_run``, ``delete_run``, ``history_token_branch`` (branch
from a token clicked in the lens) and ``cancel_history_token_branch``.
Deleting in the UI asks for confirmation first; the API call deletes at once.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from app.domain import STOP_REASONS
from app.errors import StoreError
from app.services import history, ownership
from app.services.history import ANY, RunSummary, StoredRun
from app.services.runs import run_json
from app.services.runtime import Runtime
from app.ui import lens_branch
from app.ui.caller import user_of
from app.ui.control_values import as_id
from app.ui.lens import add_lens
from app.ui.page import OnTabSelect
from app.ui.refusal import refusal
from app.ui.render import conversation_messages, safe_text, trace_messages
from app.ui.running import user_error
from app.validation import clean_text

COLUMNS = ["run", "date", "model", "prompt", "answer", "stop reason", "thinking tokens", "seconds", "kind", "by"]
#: Statuses of runs that never finished: shown instead of their samples' stop reasons.
UNFINISHED = ("running", "interrupted")


def _row(r: RunSummary) -> list[Any]:
    answers = ", ".join(dict.fromkeys(a for a in r.answers if a)) or "–"
    reasons = r.status if r.status in UNFINISHED else ", ".join(dict.fromkeys(r.stop_reasons)) or r.status
    return [
        r.run_id,
        r.created_at.strftime("%Y-%m-%d %H:%M"),
        r.model,
        r.prompt_excerpt.replace("\n", " "),
        answers,
        reasons,
        r.thinking_tokens,
        round(r.seconds, 1),
        r.kind,
        r.created_by or "",
    ]


def run_details(run: StoredRun) -> str:
    """A short markdown summary of a stored run: when, which model, with which settings."""
    s = run.settings
    budget = "thinking off" if not s.thinking else f"effort {s.effort}" if s.effort else "custom budget"
    max_t, min_t = s.resolved_budget()
    lines = [
        f"**Run #{run.run_id}** · {run.created_at.strftime('%Y-%m-%d %H:%M:%S')} UTC · {safe_text(run.kind)}"
        f" · {safe_text(run.status)}",
        f"{safe_text(run.model)} · format {safe_text(run.format)} · {budget}"
        + (f" (max {max_t}, min {min_t} thinking tokens)" if s.thinking else "")
        + f" · max answer {s.max_answer_tokens} · temperature {s.temperature} · top_p {s.top_p}"
        + f" · seed {s.seed if s.seed is not None else '–'} · {run.seconds:.1f} s",
    ]
    if run.label:  # e.g. "branch of run 7 · sample 1 · from step 2": where a branch came from
        lines.append(safe_text(run.label))
    if run.gold:
        lines.append(f"gold answer: {safe_text(run.gold)}")
    if run.error:
        lines.append(f"**Error:** {safe_text(run.error)}")
    return "\n\n".join(lines)


def run_view(run: StoredRun) -> list[gr.ChatMessage]:
    """The run as it looked when it finished: its context, then each sample's trace with its numbers."""
    messages = conversation_messages(run.messages or [{"role": "user", "content": run.prompt}])
    n = len(run.samples)
    for sample in run.samples:
        title = f"Sample {sample.index + 1} of {n}" if n > 1 else None
        messages += trace_messages(sample, stats=True, settings=run.settings, title=title)
    if not run.samples and run.error:
        messages.append(gr.ChatMessage(role="assistant", content=f"**Error:** {safe_text(run.error)}"))
    return messages


class History:
    """History handlers over one :class:`Runtime`'s store."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def list_history(self, search: str, model: str, stop_reason: str) -> pd.DataFrame:
        """Past runs, newest first; ``search`` matches prompts and answers, ``any`` means no filter."""
        try:
            runs = history.list_runs(
                self.rt.db, clean_text(search) if isinstance(search, str) else None, model, stop_reason
            )
        except StoreError as exc:
            raise refusal(str(exc)) from None
        return pd.DataFrame([_row(r) for r in runs], columns=COLUMNS)

    def model_choices(self) -> gr.Dropdown:
        return gr.Dropdown(choices=[ANY, *history.model_names(self.rt.db, self.rt.loaded.name)])

    def get_run(self, run_id: float | None) -> tuple[list[gr.ChatMessage], str, dict[str, Any]]:
        """One run with its collapsible traces, a summary, and the full record as JSON."""
        if run_id is None:
            raise refusal("Pick a run in the table (or type its number) first.")
        try:
            run = history.get_run(self.rt.db, as_id(run_id, "run"))
        except Exception as exc:  # a refusal in one line; a bug says so
            raise user_error(exc) from None
        return run_view(run), run_details(run), run_json(run)

    def delete_run(self, run_id: float | None, request: gr.Request) -> tuple[str, pd.DataFrame]:
        """Delete (hide) one of your runs, or any run if you are an admin; labels on it are kept for export.
        Returns a message and the table."""
        if run_id is None:
            raise refusal("Pick a run to delete first.")
        try:
            ownership.delete_run(self.rt, as_id(run_id, "run"), user_of(request))
        except Exception as exc:  # a refusal in one line; a bug says so
            raise user_error(exc) from None
        return f"Deleted run #{int(run_id)}.", self.list_history("", ANY, ANY)

    @staticmethod
    def selected(evt: gr.SelectData) -> int | None:
        row = evt.row_value or []
        return int(row[0]) if row else None


def build_tab(rt: Runtime) -> list[OnTabSelect]:
    """Build the History tab inside the current ``gr.Tab``; it refreshes each time the tab is opened."""
    h = History(rt)
    with gr.Row():
        search = gr.Textbox(label="Search prompts and answers", scale=3, elem_id="history-search")
        model = gr.Dropdown([ANY], value=ANY, label="Model", scale=2, allow_custom_value=True)
        stop_reason = gr.Dropdown([ANY, *STOP_REASONS], value=ANY, label="Stop reason", scale=1)
        refresh = gr.Button("Refresh", scale=0, min_width=100, elem_id="history-refresh")
    table = gr.Dataframe(
        value=lambda: h.list_history("", ANY, ANY),
        headers=COLUMNS,
        datatype=["number", "str", "str", "str", "str", "str", "number", "number", "str"],
        interactive=False,
        wrap=True,
        max_height=360,
        column_widths=["64px", "140px", "16%", "34%", "12%", "110px", "90px", "80px", "100px"],
        elem_id="history-table",
        label="Runs (click a row to open it)",
    )
    with gr.Row():
        run_id = gr.Number(label="Run number", precision=0, scale=1, elem_id="history-run-id")
        open_btn = gr.Button("Open", scale=0, min_width=100, elem_id="history-open")
        delete_btn = gr.Button("Delete…", variant="stop", scale=0, min_width=100, elem_id="history-delete")
    with gr.Row(visible=False) as confirm_row:
        confirm_text = gr.Markdown()
        confirm_btn = gr.Button("Yes, delete it", variant="stop", elem_id="history-confirm-delete")
        keep_btn = gr.Button("Keep it", elem_id="history-keep")
    status = gr.Markdown(elem_id="history-status")
    details = gr.Markdown(elem_id="history-details")
    viewer = gr.Chatbot(
        label="Run", elem_id="history-chat", height=480, buttons=["copy", "copy_all"], feedback_options=None
    )
    record = gr.JSON(visible=False)
    lens = add_lens(record, "history")
    with gr.Accordion("Branch from a token: click a thinking token in the lens", open=True):
        lens_branch.build(rt, "history", lens, record)

    filters = [search, model, stop_reason]
    gr.on(
        [search.submit, model.change, stop_reason.change, refresh.click],
        h.list_history,
        inputs=filters,
        outputs=table,
        api_name="list_history",
        concurrency_limit=4,
    )
    refresh.click(h.model_choices, outputs=model, api_visibility="private")
    opened = [viewer, details, record]
    gr.on([open_btn.click, run_id.submit], h.get_run, inputs=run_id, outputs=opened, api_name="get_run")
    table.select(h.selected, outputs=run_id, api_visibility="private").success(
        h.get_run, inputs=run_id, outputs=opened, api_name="open_selected_run", api_visibility="private"
    )

    def ask(n: float | None) -> tuple[gr.Row, str]:
        if n is None:
            raise refusal("Pick a run to delete first.")
        return gr.Row(visible=True), (
            f"Delete run #{int(n)}? It disappears from History and the labelling queue; its labels are kept "
            "and still exported."
        )

    delete_btn.click(ask, inputs=run_id, outputs=[confirm_row, confirm_text], api_visibility="private")
    keep_btn.click(lambda: gr.Row(visible=False), outputs=confirm_row, api_visibility="private", queue=False)
    confirm_btn.click(h.delete_run, inputs=run_id, outputs=[status, table], api_name="delete_run").success(
        lambda: (gr.Row(visible=False), [], "", None, None),
        outputs=[confirm_row, viewer, details, record, run_id],
        api_visibility="private",
    )
    return [OnTabSelect(h.list_history, filters, [table], then=[(h.model_choices, None, [model])])]
