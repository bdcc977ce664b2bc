"""The Annotate and Export tabs through their named API endpoints, with gradio_client against the real app
(tiny random model, real SQLite): labelling by API, a refused label on a re-split step, an export download,
an empty export refused, and Gradio auth deciding who the annotator is.
"""

from __future__ import annotations

import pytest

gr = pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

from gradio_client import Client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from app.domain import GenerationResult, GenerationSettings, SampleResult  # noqa: E402
from app.services.runs import run_prompt, save_result  # noqa: E402

THINKING = "Let x be the number.\n\nThen 2x = 10, so x = 5.\n\nCheck: 2 * 5 = 10."


def _save(rt, prompt: str, n: int = 2) -> list[int]:
    """A run of ``n`` hand-written samples (4 steps each) saved through the real save path; its sample ids."""
    samples = [
        SampleResult(index=i, raw_text="", thinking=THINKING, answer=f"x = {5 + i}", thinking_tokens=20,
                     answer_tokens=3, stop_reason="end")
        for i in range(n)
    ]  # fmt: skip
    run_id = save_result(rt, GenerationResult("tiny/test", "prompted", GenerationSettings(), samples, prompt))
    return [s.sample_id for s in rt.store.get_run(run_id).samples]


def test_every_labelling_action_is_a_named_endpoint(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    expected = {"label_queue", "open_sample", "label_step", "save_label", "label_history", "merge_steps", "split_step",
                "set_verdict", "add_preference", "add_ranking", "agreement", "export"}  # fmt: skip
    assert {f"/{n}" for n in expected} <= names


def test_label_a_generated_trace_and_see_progress_history_and_verdict(tiny_app, client):
    rt, _ = tiny_app
    saved = run_prompt(rt, "What is 2+3?", GenerationSettings(max_thinking_tokens=12, max_answer_tokens=6))
    sample_id = rt.store.get_run(saved.run_id).samples[0].sample_id
    queue = client.predict(annotator="alice", api_name="/label_queue")
    assert sample_id in [item["sample_id"] for item in queue["items"]]
    before = queue["labelled"]

    view = client.predict(sample_id=sample_id, annotator="alice", api_name="/open_sample")
    assert view["prompt"] == "What is 2+3?" and view["steps"]
    for step in view["steps"]:
        result = client.predict(sample_id=sample_id, step_id=step["step_id"], rating="0", annotator="alice",
                                api_name="/label_step")  # fmt: skip
    assert result["sample"]["done"] and result["sample"]["n_labelled"] == len(view["steps"])
    first = view["steps"][0]["step_id"]
    client.predict(sample_id=sample_id, step_id=first, rating="+1", annotator="alice", comment="changed my mind",
                   api_name="/label_step")  # fmt: skip
    history = client.predict(step_id=first, api_name="/label_history")
    assert [(h["rating"], h["comment"]) for h in history] == [(0, ""), (1, "changed my mind")]
    assert all(h["annotator"] == "alice" and h["created_at"] for h in history)
    client.predict(sample_id=sample_id, verdict="incorrect", annotator="alice", api_name="/set_verdict")
    view = client.predict(sample_id=sample_id, annotator="alice", api_name="/open_sample")
    assert view["verdict"] is False and view["steps"][0]["rating"] == 1
    assert client.predict(annotator="alice", api_name="/label_queue")["labelled"] == before + 1


def test_a_label_for_a_re_split_step_is_refused_with_a_clear_error(tiny_app, client):
    rt, _ = tiny_app
    sample_id, _ = _save(rt, "Solve 2x = 10.")
    steps = client.predict(sample_id=sample_id, annotator="bob", api_name="/open_sample")["steps"]
    client.predict(sample_id=sample_id, step_id=steps[0]["step_id"], rating="+1", annotator="bob",
                   api_name="/label_step")  # fmt: skip
    new = client.predict(sample_id=sample_id, step_id=steps[1]["step_id"], before_text="so x = 5",
                         api_name="/split_step")  # fmt: skip
    with pytest.raises(AppError, match="no longer one of sample .* merge or split"):
        client.predict(sample_id=sample_id, step_id=steps[1]["step_id"], rating="-1", annotator="bob",
                       api_name="/label_step")  # fmt: skip
    after = client.predict(sample_id=sample_id, annotator="bob", api_name="/open_sample")["steps"]
    assert [s["step_id"] for s in after[1:3]] == new["step_ids"]
    assert after[0]["rating"] == 1  # the label on the untouched step survived
    with pytest.raises(AppError, match="rating='7'"):
        client.predict(sample_id=sample_id, step_id=after[0]["step_id"], rating="7", annotator="bob",
                       api_name="/label_step")  # fmt: skip
    with pytest.raises(AppError, match="no annotator name"):
        client.predict(sample_id=sample_id, step_id=after[0]["step_id"], rating="+1", api_name="/label_step")


def test_save_label_answers_with_an_outcome_the_page_queue_can_act_on(tiny_app, client):
    """The page's save queue: a saved label, a refusal not to send again, never an exception."""
    rt, _ = tiny_app
    sample_id, _ = _save(rt, "Solve 2x = 10 (queue).")
    steps = client.predict(sample_id=sample_id, annotator="cy", api_name="/open_sample")["steps"]
    saved = client.predict(sample_id=sample_id, step_id=steps[2]["step_id"], rating="-1", annotator="cy",
                           api_name="/save_label")  # fmt: skip
    assert saved["saved"] is True and rt.store.current_labels(sample_id, "cy")[steps[2]["step_id"]].rating == -1
    client.predict(sample_id=sample_id, step_id=steps[0]["step_id"], api_name="/merge_steps")
    refused = client.predict(sample_id=sample_id, step_id=steps[0]["step_id"], rating="+1", annotator="cy",
                             api_name="/save_label")  # fmt: skip
    assert refused["saved"] is False and refused["retry"] is False
    assert "no longer one of sample" in refused["message"]
    bad = client.predict(sample_id=sample_id, step_id=steps[2]["step_id"], rating="7", annotator="cy",
                         api_name="/save_label")  # fmt: skip
    assert bad == {"saved": False, "retry": False, "message": bad["message"]} and "rating='7'" in bad["message"]


def test_preference_agreement_and_export_download(tiny_app, client, tmp_path):
    datasets = pytest.importorskip("datasets")
    rt, _ = tiny_app
    a, b = _save(rt, "Solve 2x = 10 for x.")
    for who, ratings in (("carol", ["+1", "+1", "+1", "+1"]), ("dave", ["+1", "-1", "+1", "+1"])):
        for step, rating in zip(client.predict(sample_id=a, annotator=who, api_name="/open_sample")["steps"],
                                ratings, strict=True):  # fmt: skip
            client.predict(sample_id=a, step_id=step["step_id"], rating=rating, annotator=who, api_name="/label_step")
    client.predict(chosen_sample_id=a, rejected_sample_id=b, annotator="carol", reason="x = 5",
                   api_name="/add_preference")  # fmt: skip
    client.predict(sample_ids_best_first=[b, a], annotator="dave", api_name="/add_ranking")

    report = client.predict(sample_id=a, api_name="/agreement")
    (pair,) = report["pairs"]
    assert (pair["annotator_a"], pair["annotator_b"], pair["overlap"]) == ("carol", "dave", 4)
    assert [d["step_index"] for d in report["disagreements"]] == [1]

    path, message = client.predict("preference", "parquet", "carol", "", "", "true", False, api_name="/export")
    rows = datasets.load_dataset("parquet", data_files=path, split="train", cache_dir=str(tmp_path / "c"))
    assert rows.num_rows == 1 and "x = 5" in rows[0]["chosen"] and "Exported 1 preference rows" in message

    path, message = client.predict("prm", "hf", "carol", "", "", "true", False, api_name="/export")
    assert path.endswith(".zip") and "Exported 1 prm rows" in message

    with pytest.raises(AppError, match="No labelled samples match"):
        client.predict("prm", "jsonl", "nobody", "", "", "true", False, api_name="/export")
    with pytest.raises(AppError, match="since='yesterday' is not a date; use YYYY-MM-DD"):  # the service's message
        client.predict("prm", "jsonl", "", "", "yesterday", "true", False, api_name="/export")


def test_model_menus_list_every_model_that_has_runs(tiny_app):
    from app.ui import export_tab
    from app.ui.history import History

    rt, _ = tiny_app
    _save(rt, "menu probe")  # model "tiny/test"
    history = [value for _, value in History(rt).model_choices().choices]
    assert history == ["any", *sorted({*rt.store.list_models(), rt.loaded.name})] and "tiny/test" in history
    _, models = export_tab._choices(rt)
    assert (
        models == [("all models", ""), *((m, m) for m in rt.store.list_models())]
        and ("tiny/test", "tiny/test") in models
    )


def test_with_auth_the_login_is_the_annotator(tiny_loaded, tiny_engine, tmp_path):
    from ui_support import make_runtime

    from app.ui import annotate

    rt = make_runtime(tiny_loaded, tiny_engine, tmp_path / "auth.db")
    rt.settings.auth = "erin:secret"
    sample_id, _ = _save(rt, "Solve 2x = 10 with a login.")
    with gr.Blocks() as demo:
        annotate.build_tab(rt)
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, auth=rt.settings.auth_pairs())
    try:
        client = Client(demo.local_url, auth=("erin", "secret"), verbose=False)
        step = client.predict(sample_id=sample_id, api_name="/open_sample")["steps"][0]
        client.predict(sample_id=sample_id, step_id=step["step_id"], rating="+1", annotator="mallory",
                       api_name="/label_step")  # fmt: skip
    finally:
        demo.close()
    assert [h.annotator for h in rt.store.label_history(step["step_id"])] == ["erin"]


def test_model_and_user_text_is_escaped_in_every_annotate_snippet():
    from app.services.labeling import SampleBrief, SampleView, StepView
    from app.ui import annotate_prefs, annotate_view

    bad = "<script>alert(1)</script>"
    step = StepView(step_id=1, index=0, source="thinking", text=bad, rating=-1, comment=bad, first_error=True)
    view = SampleView(1, 1, 0, bad, bad, bad, bad, bad, "end", bad, [step], None, 0)
    brief = SampleBrief(2, 1, 1, bad, bad, bad, bad)
    for html in (annotate_view.steps_html(view, 0), annotate_view.header_html(view),
                 annotate_view.current_html(view, 0), annotate_prefs.side_html("A", brief),
                 annotate_prefs.side_html("B", brief)):  # fmt: skip
        assert "<script>" not in html and "&#60;script&#62;" in html
