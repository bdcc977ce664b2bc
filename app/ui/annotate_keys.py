"""The Annotate tab's in-page labelling script: shortcut keys and rating clicks apply at once in the browser and
their saves go to the server in a queue, in order, each tied to the step id it was pressed on.

Why in the page: when the cursor only moved after the server answered, a key pressed meanwhile re-rated the step
before, and a key pressed while an event was pending was dropped. Here a rating key (or click) paints the step's
badge, moves the selection to the next unlabelled step and appends ``{sample_id, step_id, rating}`` to a queue;
one save is in flight at a time (the ``save_label`` endpoint of ``annotate_api``, same session, so Gradio's login
is the annotator). A save that fails for a passing reason (network, server busy) is marked on its step ("not
saved yet, retrying") and retried with a growing delay, keeping the order; a save the server refuses (the step
was merged away, it comes after the first error) is dropped with the server's sentence shown on the step and in
the status line, and the sample is reloaded. When the queue is empty the selection is sent to the server (the
steps list's ``click`` event), which re-renders the current step, its history and the suggestion.

Server renders carry the sample id, the cursor and a render nonce on the ``.tl-steps`` wrapper
(``annotate_view.steps_html``); after each one the script re-applies what is still queued, so a render that
predates a save never hides it. Keys and buttons that act on the server's selection (``a`` accept, ``n`` next
sample, merge, split, the rollout buttons: :data:`GUARDED`) wait until every save is through and the selection
is synced.
"""

from __future__ import annotations

import json

#: Rating keys -> (rating, first_error); j/k move; n/a click the button with that elem_id once in sync.
RATING_KEYS: dict[str, tuple[int, bool]] = {
    "1": (1, False), "+": (1, False), "2": (0, False), "0": (0, False), "3": (-1, False), "-": (-1, False),
    "f": (-1, True),
}  # fmt: skip
MOVE_KEYS: dict[str, int] = {"j": 1, "k": -1}
SERVER_KEYS: dict[str, str] = {"n": "tl-next-sample", "a": "tl-accept-suggestion"}
#: Buttons (elem_id) whose server handler reads the selection: a click waits until the page is in sync.
GUARDED: list[str] = [
    "tl-next-sample", "tl-accept-suggestion", "tl-merge", "tl-split", "tl-branch-here", "tl-credit", "tl-autolabel",
]  # fmt: skip

#: The status line above the steps (the script writes into it): "all labels saved", "saving 3 labels…", errors.
STATUS_HTML = "<div id='tl-save-status' data-state='idle' style='min-height:1.2em;font-size:.85em;color:#6b7280'></div>"

_LABELS_JS = r"""
if (!window.__tlLabels) {
  const RATING_KEYS = __RATING__, MOVE_KEYS = __MOVE__, SERVER_KEYS = __SERVER__, STYLE = __STYLE__;
  const GUARDED = __GUARDED__;
  const st = window.__tlLabels = {queue: [], busy: false, sample: null, cur: 0, nonce: null, dirty: false,
                                  syncing: false, waiting: [], select: null, retryMs: 500};
  const box = () => document.querySelector("#tl-steps .tl-steps");
  const steps = () => Array.from(document.querySelectorAll("#tl-steps .tl-steps [data-pos]"));
  const apiRoot = () => ((window.gradio_config && window.gradio_config.root) || (location.origin + location.pathname))
    .replace(/\/+$/, "");
  const annotator = () => {
    const el = document.querySelector("#tl-annotator textarea, #tl-annotator input");
    return el ? el.value : "";
  };
  const synced = () => !st.queue.length && !st.busy && !st.dirty && !st.syncing;

  function status(text, bad) {
    const el = document.getElementById("tl-save-status");
    if (!el) return;
    el.textContent = text;
    el.dataset.state = bad ? "error" : (st.queue.length ? "saving" : "saved");
    el.style.color = bad ? "#dc2626" : "#6b7280";
  }
  function showQueue() {
    const n = st.queue.length, head = st.queue[0];
    if (!n) return status("all labels saved", false);
    const saving = `saving ${n} label${n > 1 ? "s" : ""}…`;
    if (head.failed) status(`${saving} the label for step #${head.pos} is not saved yet (${head.error}); retrying`, true);
    else status(saving, false);
  }
  function mark(el, text, bad) {
    let m = el.querySelector(".tl-save-mark");
    if (!m) { m = document.createElement("small"); m.className = "tl-save-mark"; el.querySelector("span").after(m); }
    m.textContent = text ? " · " + text : "";
    m.style.color = bad ? "#dc2626" : "#6b7280";
  }
  function badge(el, rating) {
    const [color, text] = STYLE[rating === "" ? "" : String(rating)];
    const b = el.querySelector("span");
    b.style.background = color;
    b.textContent = text;
    el.dataset.rating = rating === "" ? "" : String(rating);
  }
  function paint() {
    const els = steps();
    const pending = new Map(st.queue.map((s) => [String(s.step_id), s]));
    els.forEach((el, i) => {
      const p = pending.get(el.dataset.stepId);
      if (p) { badge(el, p.rating); mark(el, p.failed ? "not saved yet, retrying…" : "saving…", p.failed); }
      el.style.border = i === st.cur ? "2px solid #2563eb" : "1px solid #e5e7eb";
      el.dataset.current = i === st.cur ? "1" : "";
    });
  }
  function nextOpen(pos) {
    const open = steps().map((el, i) => (el.dataset.rating === "" && el.dataset.after !== "1" ? i : -1))
      .filter((i) => i >= 0);
    const later = open.filter((i) => i > pos);
    if (later.length) return later[0];
    if (open.length) return open[0];
    return Math.min(pos + 1, steps().length - 1);
  }
  function sync() {  // the selection to the server, once every save is through
    if (st.queue.length || st.busy || !st.dirty || !st.select) return;
    st.dirty = false;
    st.syncing = true;
    st.select(st.cur);
  }
  function afterRender() {
    const b = box();
    if (!b || b.dataset.nonce === st.nonce) return;
    st.nonce = b.dataset.nonce;
    const n = steps().length, rendered = Number(b.dataset.cursor || 0);
    if (b.dataset.sampleId !== st.sample) {
      st.sample = b.dataset.sampleId; st.cur = rendered; st.dirty = false; st.syncing = false;
    } else if (st.syncing) {
      if (rendered === st.cur) st.syncing = false;
    } else if (!st.queue.length && !st.busy && !st.dirty) {
      st.cur = rendered;  // the server moved the selection (a button, a reload)
    }
    st.cur = Math.max(0, Math.min(st.cur, n - 1));
    paint();
    if (synced()) { const run = st.waiting.splice(0); run.forEach((f) => f()); }
  }
  async function send(item) {
    const url = apiRoot() + "/gradio_api/call/save_label";
    const body = {data: [item.sample_id, item.step_id, String(item.rating), annotator(), item.comment,
                         item.first_error]};
    const r = await fetch(url, {method: "POST", headers: {"content-type": "application/json"},
                                body: JSON.stringify(body), credentials: "same-origin"});
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const {event_id} = await r.json();
    const text = await (await fetch(`${url}/${event_id}`, {credentials: "same-origin"})).text();
    const m = text.match(/event: complete\s*\ndata: (.*)/);
    if (!m) throw new Error("the server did not answer");
    return JSON.parse(m[1])[0];
  }
  async function pump() {
    if (st.busy) return;
    st.busy = true;
    while (st.queue.length) {
      const item = st.queue[0];
      showQueue();
      let outcome;
      try { outcome = await send(item); } catch (err) { outcome = {retry: true, message: String(err.message || err)}; }
      const el = steps().find((e) => e.dataset.stepId === String(item.step_id));
      if (outcome.saved) {
        st.queue.shift(); st.retryMs = 500;
        if (el && !st.queue.some((s) => s.step_id === item.step_id)) mark(el, "", false);
      } else if (outcome.retry) {
        item.failed = true; item.error = outcome.message;
        if (el) mark(el, `not saved yet (${outcome.message}), retrying…`, true);
        showQueue();
        await new Promise((ok) => setTimeout(ok, st.retryMs));
        st.retryMs = Math.min(st.retryMs * 2, 8000);
      } else {
        st.queue.shift();
        if (el) { badge(el, item.prev); mark(el, "not saved: " + outcome.message, true); }
        st.refused = `Label for step #${item.pos} not saved: ${outcome.message}`;
        st.cur = item.pos; st.dirty = true;  // back to that step, as the server now has it
      }
    }
    st.busy = false;
    if (st.refused) { status(st.refused, true); st.refused = null; } else showQueue();
    sync();
  }
  function rate(rating, firstError) {
    const els = steps(), el = els[st.cur];
    if (!el) return;
    const comment = document.querySelector("#tl-comment textarea");
    const item = {sample_id: Number(box().dataset.sampleId), step_id: Number(el.dataset.stepId), pos: st.cur,
                  rating: rating, first_error: !!firstError, prev: el.dataset.rating,
                  comment: comment ? comment.value : ""};
    st.queue.push(item);
    badge(el, rating);
    mark(el, "saving…", false);
    if (comment && comment.value) { comment.value = ""; comment.dispatchEvent(new Event("input", {bubbles: true})); }
    if (firstError) {
      els.forEach((e, i) => { if (i > st.cur) { e.dataset.after = "1"; e.style.opacity = ".45"; } });
    } else {
      st.cur = nextOpen(st.cur);
    }
    st.dirty = true;
    paint();
    showQueue();
    pump();
  }
  function move(delta, to) {
    const n = steps().length;
    if (!n) return;
    st.cur = Math.max(0, Math.min(to === undefined ? st.cur + delta : to, n - 1));
    st.dirty = true;
    paint();
    sync();
  }
  function whenSynced(f) { if (synced()) f(); else { st.waiting.push(f); showQueue(); } }
  st.rate = rate; st.move = move; st.afterRender = afterRender;
  setInterval(() => { if (st.syncing || st.waiting.length) afterRender(); }, 500);  // a render the observer missed
  // A button that acts on the server's selection waits until every save is through and the selection synced.
  document.addEventListener("click", (e) => {
    const btn = e.target.closest && e.target.closest("button");
    const host = btn && (btn.id ? btn : btn.closest("[id]"));
    if (!host || !GUARDED.includes(host.id) || btn.__tlReplay || synced()) return;
    e.preventDefault(); e.stopImmediatePropagation();
    whenSynced(() => { btn.__tlReplay = true; btn.click(); btn.__tlReplay = false; });
  }, true);
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.isComposing) return;
    const t = e.target;
    if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
    const stepsShown = box() && box().offsetParent !== null;
    if (e.key in RATING_KEYS && stepsShown && !e.repeat) {
      e.preventDefault(); rate(...RATING_KEYS[e.key]);
    } else if (e.key in MOVE_KEYS && stepsShown) {
      e.preventDefault(); move(MOVE_KEYS[e.key]);
    } else if (e.key in SERVER_KEYS && !e.repeat) {
      const el = document.getElementById(SERVER_KEYS[e.key]);
      const btn = el && (el.tagName === "BUTTON" ? el : el.querySelector("button"));
      if (!btn || btn.disabled || btn.offsetParent === null) return;
      e.preventDefault();
      btn.click();  // a guarded button waits for the sync itself
    }
  });
}
"""


def labels_js(style: dict[int | None, tuple[str, str]]) -> str:
    """The script, installed once per page (the shortcut help's ``js_on_load``); ``style`` is the rating
    badges' (colour, text) by rating, None for unrated (``annotate_view.RATING_STYLE``)."""
    return (
        _LABELS_JS.replace("__RATING__", json.dumps(RATING_KEYS))
        .replace("__MOVE__", json.dumps(MOVE_KEYS))
        .replace("__SERVER__", json.dumps(SERVER_KEYS))
        .replace("__GUARDED__", json.dumps(GUARDED))
        .replace("__STYLE__", json.dumps({("" if k is None else str(k)): list(v) for k, v in style.items()}))
    )


#: The steps list: a click selects a step (in the page at once, then synced); every server render is noticed.
STEPS_JS = """
const tl = () => window.__tlLabels;
const hook = () => {
  if (!tl()) return setTimeout(hook, 50);
  tl().select = (pos) => trigger("click", {pos: pos});
  new MutationObserver(() => tl().afterRender()).observe(element, {childList: true, subtree: true, attributes: true,
                                                           attributeFilter: ["data-nonce"]});
  tl().afterRender();
};
hook();
element.addEventListener("click", (e) => {
  const step = e.target.closest("[data-pos]");
  if (step && tl()) tl().move(0, Number(step.dataset.pos));
});
"""


def rate_js(rating: int, first_error: bool = False) -> str:
    """The ``js`` of a rating button: the same in-page rating as its key."""
    return f"() => window.__tlLabels && window.__tlLabels.rate({rating}, {str(first_error).lower()})"


def move_js(delta: int) -> str:
    """The ``js`` of a previous/next button."""
    return f"() => window.__tlLabels && window.__tlLabels.move({delta})"
