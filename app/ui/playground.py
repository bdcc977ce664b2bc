"""The Playground tab: a chat whose thinking streams live into a collapsible block above the answer.

Layout and event wiring only; the handlers are :class:`app.ui.playground_run.Playground`. API endpoints
(``gradio_client``): ``generate`` (streaming), ``await_save`` (follows a save delayed by a busy database),
``cancel``, ``stop_thinking``, ``think_longer`` (streaming), ``new_chat``, ``examples``; branching:
``pg_branch_here`` (from a step), ``pg_token_branch`` (from a token clicked in the lens) and their cancels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from app.domain import EFFORT_BUDGETS, GenerationSettings
from app.services.inputs import load_examples, require_prompt
from app.services.runtime import Runtime
from app.services.settings_input import CUSTOM, EFFORTS
from app.ui import branch_here, lens_branch
from app.ui.fields import SettingNumber, SettingSlider
from app.ui.lens import add_lens
from app.ui.playground_run import CONTROLS, NOTHING_RUNNING, Chat, Playground
from app.ui.refusal import refusal
from app.ui.running import MODEL_QUEUE, user_error

_EFFORT_INFO = ", ".join(
    f"{name}: ≤{limit}" + (f" (≥{floor})" if floor else "") for name, (limit, floor) in EFFORT_BUDGETS.items()
)


def _buttons(busy: bool) -> tuple[gr.Button, gr.Button, gr.Button, gr.Button]:
    """Send, Stop, Stop thinking now, Think longer: while a run goes only the two stops work."""
    return (
        gr.Button(interactive=not busy),
        gr.Button(interactive=busy),
        gr.Button(interactive=busy),
        gr.Button(interactive=not busy),
    )


def _busy() -> tuple[gr.Button, gr.Button, gr.Button, gr.Button]:
    return _buttons(True)


def _idle() -> tuple[gr.Button, gr.Button, gr.Button, gr.Button]:
    return _buttons(False)


@dataclass
class Page:
    """The Playground's components that its events wire together."""

    chatbot: gr.Chatbot
    numbers: gr.Markdown
    prompt: gr.Textbox
    send: gr.Button
    stop: gr.Button
    stop_thinking: gr.Button
    think_longer: gr.Button
    new_chat: gr.Button
    controls: dict[str, gr.components.Component]  # the settings controls, by CONTROLS name
    leave_out: gr.Checkbox
    chat_state: gr.State
    hidden_prompt: gr.Textbox
    last_run: gr.JSON

    @property
    def buttons(self) -> list[gr.Button]:
        return [self.send, self.stop, self.stop_thinking, self.think_longer]

    @property
    def settings(self) -> list[gr.components.Component]:
        """The settings controls in the order the events take them."""
        return [self.controls[name] for name in CONTROLS]

    @property
    def results(self) -> list[Any]:
        """What a run updates: the chat, the status line, the saved run, the chat state."""
        return [self.chatbot, self.numbers, self.last_run, self.chat_state]


def build_tab(rt: Runtime) -> None:
    """Build the Playground inside the current ``gr.Tab``."""
    pg = Playground(rt)
    chat_state = gr.State(Chat())
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            conversation = _conversation()
        with gr.Column(scale=1, min_width=280):
            controls, leave_out = _settings_controls()
    hidden_prompt = gr.Textbox(visible=False)
    last_run = gr.JSON(visible=False)
    lens = add_lens(last_run, "playground")
    with gr.Accordion("Branch from a token: click a thinking token in the lens", open=True):
        lens_branch.build(rt, "pg", lens, last_run)
    with gr.Accordion("Branch here: resample the last answer from one of its steps", open=False):
        branch_here.build(rt, "pg", last_run, with_sample=False)
    page = Page(
        **conversation, controls=controls, leave_out=leave_out, chat_state=chat_state,
        hidden_prompt=hidden_prompt, last_run=last_run,
    )  # fmt: skip
    _wire_generate(pg, page)
    _wire_think_longer(pg, page)
    page.new_chat.click(pg.new_chat, outputs=page.results, api_name="new_chat")
    page.chatbot.clear(pg.new_chat, outputs=page.results, api_visibility="private")
    gr.api(pg.examples, api_name="examples")


def _conversation() -> dict[str, Any]:
    """The chat, the prompt box and its buttons, the examples; the components by :class:`Page` name."""
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
        stop_thinking = gr.Button("Stop thinking now", size="sm", interactive=False, elem_id="playground-stop-thinking")
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
    return dict(
        chatbot=chatbot, numbers=numbers, prompt=prompt, send=send, stop=stop, stop_thinking=stop_thinking,
        think_longer=think_longer, new_chat=new_chat,
    )  # fmt: skip


def _settings_controls() -> tuple[dict[str, gr.components.Component], gr.Checkbox]:
    """The settings column: the :data:`CONTROLS` by name, and "leave earlier thinking out"."""
    defaults = GenerationSettings()
    thinking = gr.Checkbox(value=defaults.thinking, label="Thinking", info="Off: answer directly")
    effort = gr.Radio(
        list(EFFORTS), value=defaults.effort, label="Effort", info=f"Thinking tokens: {_EFFORT_INFO}", elem_id="effort"
    )
    with gr.Group(visible=False) as custom_box:
        max_thinking = SettingNumber("max_thinking_tokens", 512, label="Max thinking tokens")
        min_thinking = SettingNumber(
            "min_thinking_tokens", 0, label="Min thinking tokens", info="Below this, keep thinking"
        )
        continuation = gr.Textbox(
            value=defaults.continuation, label="Continuation string", info="Appended when the model stops too early"
        )
    max_answer = gr.Slider(1, 4096, value=defaults.max_answer_tokens, step=1, label="Max answer tokens")
    temperature = SettingSlider("temperature", defaults.temperature, step=0.05, label="Temperature", info="0 = greedy")
    top_p = SettingSlider("top_p", defaults.top_p, step=0.05, label="top_p")
    seed = gr.Number(value=-1, label="Seed", precision=0, info="-1 = not fixed")
    leave_out = gr.Checkbox(
        value=True, label="Leave earlier thinking out of the context", info="Qwen3's advice for multi-turn chats"
    )
    effort.change(lambda e: gr.Group(visible=e == CUSTOM), effort, custom_box, api_visibility="private", queue=False)
    controls = dict(zip(CONTROLS, (
        thinking, effort, max_thinking, min_thinking, continuation, max_answer, temperature, top_p, seed,
    ), strict=True))  # fmt: skip
    return controls, leave_out


def _wire_generate(pg: Playground, page: Page) -> None:
    """Send (or Enter): the prompt shown at once, then the run, the buttons idle again, a delayed save followed."""

    def submit(text: str, chat: Chat | None, request: gr.Request) -> tuple[Any, ...]:
        """Before the queue: refuse an empty prompt at once (the browser's check), else show it and go busy."""
        try:
            require_prompt(text)
        except Exception as exc:
            raise user_error(exc) from None
        if pg.busy(request):  # Enter in the box while a run goes: refuse, and the text stays in the box
            raise refusal(
                "The answer is still being written: wait for it, or press Stop. Your prompt stays in the box."
            )
        return (*pg.accept(text, chat, request), *_busy())

    chain = gr.on(
        [page.send.click, page.prompt.submit],
        submit,
        inputs=[page.prompt, page.chat_state],
        outputs=[page.prompt, page.hidden_prompt, page.chatbot, *page.buttons],
        api_visibility="private",
        concurrency_limit=None,
    )
    generated = chain.success(
        pg.generate,
        inputs=[page.hidden_prompt, *page.settings, page.leave_out, page.chat_state],
        outputs=page.results,
        api_name="generate",
        show_progress="hidden",
        **MODEL_QUEUE,
    )
    # Gradio 6's page runs .then() only after a success, so a refused run (a bad setting, the token cap)
    # needs its own .failure(): buttons idle again, the prompt back in the box, the chat as it was.
    generated.then(_idle, outputs=page.buttons, api_visibility="private", queue=False)
    generated.failure(
        lambda text, chat: (*pg.refused(text, chat), *_idle()),
        inputs=[page.hidden_prompt, page.chat_state],
        outputs=[page.prompt, page.chatbot, *page.buttons],
        api_visibility="private",
        queue=False,
    )
    # A save the busy database delayed: "Saving…" until it lands, then "Saved" (or a warning that stays).
    generated.then(
        pg.await_save,
        inputs=[page.last_run, page.chat_state],
        outputs=[page.numbers, page.chatbot, page.last_run, page.chat_state],
        api_name="await_save",
        show_progress="hidden",
        concurrency_limit=None,
    )
    # Stop's answer goes to a hidden box, never to the status line: the run's own stream writes that
    # ("Stopping…", then the saved run), so no late answer can overwrite the final state.
    stop_answer = gr.Textbox(visible=False)
    page.stop.click(
        _stop_pressed(pg), outputs=[stop_answer], api_name="cancel", concurrency_limit=None, show_progress="hidden"
    )
    page.stop_thinking.click(
        pg.stop_thinking,
        outputs=[stop_answer],  # the status line is the run's (it says when the thinking stopped)
        api_name="stop_thinking",
        concurrency_limit=None,
        show_progress="hidden",
    )


def _stop_pressed(pg: Playground):  # noqa: ANN202 - a Gradio handler
    """Stop: cancel this session's run; "Nothing is running." also shows as a note (the status line is the run's)."""

    def cancel(request: gr.Request) -> str:
        answer = pg.cancel(request)
        if answer == NOTHING_RUNNING:
            gr.Info(answer)
        return answer

    return cancel


def _wire_think_longer(pg: Playground, page: Page) -> None:
    """Think longer: prepared at the click (a Stop while queued counts), then run like a new turn."""

    def prepare_longer(request: gr.Request):  # noqa: ANN202 - Gradio updates
        pg.prepare(request)
        return _busy()

    longer = page.think_longer.click(
        prepare_longer, outputs=page.buttons, api_visibility="private", concurrency_limit=None
    )
    longer_run = longer.success(
        pg.think_longer,
        inputs=[*page.settings, page.chat_state],
        outputs=page.results,
        api_name="think_longer",
        show_progress="hidden",
        **MODEL_QUEUE,
    )
    longer_run.then(_idle, outputs=page.buttons, api_visibility="private", queue=False)
    longer_run.failure(_idle, outputs=page.buttons, api_visibility="private", queue=False)
