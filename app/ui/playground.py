"""The Playground tab: a chat whose thinking streams live into a collapsible block above the answer.

Layout and event wiring only; the handlers are :class:`app.ui.handlers.Playground`. API endpoints
(``gradio_client``): ``generate`` (streaming), ``await_save`` (follows a save delayed by a busy database),
``cancel``, ``stop_thinking``, ``think_longer`` (streaming), ``new_chat``, ``examples``; branching:
``pg_branch_here`` (from a step), ``pg_token_branch`` (from a token clicked in the lens) and their cancels.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from app.domain import EFFORT_BUDGETS
from app.services.inputs import load_examples
from app.services.runs import require_prompt
from app.services.runtime import Runtime
from app.ui import branch_here, lens_branch
from app.ui.fields import WholeNumber
from app.ui.handlers import EFFORTS, Chat, Playground
from app.ui.lens import add_lens
from app.ui.running import MODEL_QUEUE, session_key

_EFFORT_INFO = ", ".join(
    f"{name}: ≤{limit}" + (f" (≥{floor})" if floor else "") for name, (limit, floor) in EFFORT_BUDGETS.items()
)


def _busy() -> tuple[gr.Button, gr.Button, gr.Button, gr.Button]:
    return (
        gr.Button(interactive=False),
        gr.Button(interactive=True),
        gr.Button(interactive=True),
        gr.Button(interactive=False),
    )


def _idle() -> tuple[gr.Button, gr.Button, gr.Button, gr.Button]:
    return (
        gr.Button(interactive=True),
        gr.Button(interactive=False),
        gr.Button(interactive=False),
        gr.Button(interactive=True),
    )


def build_tab(rt: Runtime) -> None:
    """Build the Playground inside the current ``gr.Tab``."""
    pg = Playground(rt)
    chat_state = gr.State(Chat())
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(
                label="Conversation",
                elem_id="playground-chat",
                height=560,
                buttons=["copy", "copy_all"],
                feedback_options=None,
                sanitize_html=True,
                placeholder="Ask a question, or pick a GSM8K example below. "
                "The model's thinking streams into a collapsible block above its answer.",
            )
            numbers = gr.Markdown(elem_id="playground-stats")
            with gr.Row(equal_height=True):
                prompt = gr.Textbox(
                    placeholder="Type a problem… (Enter sends, Shift+Enter adds a line)",
                    show_label=False,
                    lines=1,
                    max_lines=12,
                    scale=6,
                    elem_id="playground-prompt",
                )
                with gr.Column(scale=1, min_width=110):
                    send = gr.Button("Send", variant="primary", elem_id="playground-send")
                    stop = gr.Button("Stop", variant="stop", interactive=False, elem_id="playground-stop")
            with gr.Row():
                stop_thinking = gr.Button(
                    "Stop thinking now", size="sm", interactive=False, elem_id="playground-stop-thinking"
                )
                think_longer = gr.Button("Think longer", size="sm", elem_id="playground-think-longer")
                new_chat = gr.Button("New chat", size="sm", elem_id="playground-new")
            gr.Markdown(
                "*Stop thinking now* closes the thinking at the next token and lets the answer run (stop reason "
                "`user_cut`). *Think longer* resumes the last answer's thinking with the continuation string and a "
                "fresh budget (the controls on the right), saved as a branch of that run.",
                elem_classes=["tl-help"],
            )
            examples = load_examples()
            if examples:
                gr.Examples(
                    examples=[[row["question"]] for row in examples],
                    inputs=[prompt],
                    label="GSM8K examples",
                    examples_per_page=5,
                )
        with gr.Column(scale=1, min_width=280):
            thinking = gr.Checkbox(value=True, label="Thinking", info="Off: answer directly")
            effort = gr.Radio(
                list(EFFORTS), value="low", label="Effort", info=f"Thinking tokens: {_EFFORT_INFO}", elem_id="effort"
            )
            with gr.Group(visible=False) as custom_box:
                max_thinking = WholeNumber(value=512, label="Max thinking tokens", minimum=0)
                min_thinking = WholeNumber(
                    value=0, label="Min thinking tokens", minimum=0, info="Below this, keep thinking"
                )
                continuation = gr.Textbox(
                    value="Wait", label="Continuation string", info="Appended when the model stops too early"
                )
            max_answer = gr.Slider(1, 4096, value=256, step=1, label="Max answer tokens")
            temperature = gr.Slider(0.0, 2.0, value=0.0, step=0.05, label="Temperature", info="0 = greedy")
            top_p = gr.Slider(0.05, 1.0, value=0.95, step=0.05, label="top_p")
            seed = gr.Number(value=-1, label="Seed", precision=0, info="-1 = not fixed")
            leave_out = gr.Checkbox(
                value=True,
                label="Leave earlier thinking out of the context",
                info="Qwen3's advice for multi-turn chats",
            )
    hidden_prompt = gr.Textbox(visible=False)
    last_run = gr.JSON(visible=False)
    lens = add_lens(last_run, "playground")
    with gr.Accordion("Branch from a token: click a thinking token in the lens", open=True):
        lens_branch.build(rt, "pg", lens, last_run)
    with gr.Accordion("Branch here: resample the last answer from one of its steps", open=False):
        branch_here.build(rt, "pg", last_run, with_sample=False)

    effort.change(lambda e: gr.Group(visible=e == "custom"), effort, custom_box, api_visibility="private", queue=False)

    def submit(text: str, chat: Chat | None, request: gr.Request) -> tuple[Any, ...]:
        """Before the queue: refuse an empty prompt at once (the browser's check), else show it and go busy."""
        try:
            require_prompt(text)
        except ValueError as exc:
            raise gr.Error(str(exc)) from None
        if pg.busy(request):  # Enter in the box while a run goes: refuse, and the text stays in the box
            raise gr.Error(
                "The answer is still being written: wait for it, or press Stop. Your prompt stays in the box."
            )
        return (*pg.accept(text, chat, request), *_busy())

    chain = gr.on(
        [send.click, prompt.submit],
        submit,
        inputs=[prompt, chat_state],
        outputs=[prompt, hidden_prompt, chatbot, send, stop, stop_thinking, think_longer],
        api_visibility="private",
        concurrency_limit=None,
    )
    generated = chain.success(
        pg.generate,
        inputs=[
            hidden_prompt,
            thinking,
            effort,
            max_thinking,
            min_thinking,
            continuation,
            max_answer,
            temperature,
            top_p,
            seed,
            leave_out,
            chat_state,
        ],  # fmt: skip
        outputs=[chatbot, numbers, last_run, chat_state],
        api_name="generate",
        show_progress="hidden",
        **MODEL_QUEUE,
    )
    buttons = [send, stop, stop_thinking, think_longer]
    # Gradio 6's page runs .then() only after a success, so a refused run (a bad setting, the token cap)
    # needs its own .failure(): buttons idle again, the prompt back in the box, the chat as it was.
    generated.then(_idle, outputs=buttons, api_visibility="private", queue=False)
    generated.failure(
        lambda text, chat: (*pg.refused(text, chat), *_idle()),
        inputs=[hidden_prompt, chat_state],
        outputs=[prompt, chatbot, *buttons],
        api_visibility="private",
        queue=False,
    )
    # A save the busy database delayed: "Saving…" until it lands, then "Saved" (or a warning that stays).
    generated.then(
        pg.await_save,
        inputs=[last_run, chat_state],
        outputs=[numbers, chatbot, last_run, chat_state],
        api_name="await_save",
        show_progress="hidden",
        concurrency_limit=None,
    )
    stop.click(pg.cancel, outputs=[numbers], api_name="cancel", concurrency_limit=None, show_progress="hidden")
    stop_thinking.click(
        pg.stop_thinking, outputs=[numbers], api_name="stop_thinking", concurrency_limit=None, show_progress="hidden"
    )

    def prepare_longer(request: gr.Request):  # noqa: ANN202 - Gradio updates
        pg.registry.prepare(session_key(request))
        return _busy()

    longer = think_longer.click(
        prepare_longer,
        outputs=[send, stop, stop_thinking, think_longer],
        api_visibility="private",
        concurrency_limit=None,
    )
    longer_run = longer.success(
        pg.think_longer,
        inputs=[
            thinking,
            effort,
            max_thinking,
            min_thinking,
            continuation,
            max_answer,
            temperature,
            top_p,
            seed,
            chat_state,
        ],  # fmt: skip
        outputs=[chatbot, numbers, last_run, chat_state],
        api_name="think_longer",
        show_progress="hidden",
        **MODEL_QUEUE,
    )
    longer_run.then(_idle, outputs=buttons, api_visibility="private", queue=False)
    longer_run.failure(_idle, outputs=buttons, api_visibility="private", queue=False)
    new_chat.click(pg.new_chat, outputs=[chatbot, numbers, last_run, chat_state], api_name="new_chat")
    chatbot.clear(pg.new_chat, outputs=[chatbot, numbers, last_run, chat_state], api_visibility="private")
    gr.api(pg.examples, api_name="examples")
