"""Pure plotly figure builders for the analysis tabs: data in, ``go.Figure`` out.

Owns: the vote bar chart, the thinking-tokens-vs-answer scatter, the accuracy-vs-budget curves and the
tokens-per-budget chart, and their colours. Does not know Gradio, the store, the model or how answers are
compared: it draws the services' report dataclasses (the consistency report says which answers form a group
and whether each group is right), so each builder can be tested without a browser. Plotly
renders trace text as SVG text, not HTML, but we still shorten and escape labels: they are model output.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import plotly.graph_objects as go

from app.services.consistency import ConsistencyReport, SampleCard
from app.services.sweep import BudgetPoint

CORRECT, WRONG, NEUTRAL, MAJORITY, NONE = "#2e7d32", "#c62828", "#78909c", "#1565c0", "#bdbdbd"
PALETTE = ("#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457", "#558b2f", "#4e342e", "#283593")
_LAYOUT = {"template": "plotly_white", "margin": {"l": 50, "r": 20, "t": 50, "b": 50}, "height": 360}


def short_label(text: str | None, limit: int = 24) -> str:
    """A chart-safe label: "(no answer)" for None, one line, at most ``limit`` characters, HTML-escaped."""
    if text is None:
        return "(no answer)"
    one_line = " ".join(text.split())
    if len(one_line) > limit:
        one_line = one_line[: limit - 1] + "…"
    return html.escape(one_line)


def _unique_labels(answers: Sequence[str | None]) -> list[str]:
    """Short labels, made distinct when two long answers shorten to the same text (bars must not merge)."""
    seen: dict[str, int] = {}
    out = []
    for answer in answers:
        label = short_label(answer)
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out


def vote_bar(report: ConsistencyReport) -> go.Figure:
    """One bar per answer group (largest first, no answer last): green/red by the group's correctness when
    there is a gold answer, else the majority blue."""
    groups = report.groups
    answers = [g.answer for g in groups]
    values = [g.count for g in groups]
    colours = []
    for g in groups:
        if g.answer is None:
            colours.append(NONE)
        elif g.correct is not None:
            colours.append(CORRECT if g.correct else WRONG)
        else:
            colours.append(MAJORITY if g.majority else NEUTRAL)
    n = max(report.vote.n, 1)
    fig = go.Figure(
        go.Bar(
            x=_unique_labels(answers),
            y=values,
            marker_color=colours,
            text=[f"{v} ({v / n:.0%})" for v in values],
            textposition="auto",
            hovertext=[html.escape(a) if a is not None else "no answer extracted" for a in answers],
            hoverinfo="text+y",
        )
    )
    title = f"Answer distribution over {report.vote.n} samples"
    if report.vote.majority_correct is not None:
        title += " · majority " + ("correct" if report.vote.majority_correct else "wrong")
    fig.update_layout(title=title, xaxis_title="extracted answer", yaxis_title="samples", **_LAYOUT)
    fig.update_yaxes(rangemode="tozero", dtick=1 if max(values, default=1) <= 10 else None)
    return fig


def tokens_scatter(report: ConsistencyReport) -> go.Figure:
    """Thinking tokens (x) per answer group (y), one point per sample, coloured by answer or by correctness.

    A hollow diamond marks where the answer first appeared in the thinking: the gap to the filled
    point is the "overthinking" (tokens spent after the answer was already reached).
    """
    fig = go.Figure()
    y_labels = _unique_labels([g.answer for g in report.groups])

    def y_of(card: SampleCard) -> str:
        return y_labels[card.group]

    groups: dict[str, list[SampleCard]] = {}
    for card in report.samples:
        if report.groups[card.group].answer is None:
            key = "(no answer)"
        elif report.gold is not None:
            key = "correct" if card.correct else "wrong"
        else:
            key = y_of(card)
        groups.setdefault(key, []).append(card)

    for n, (key, cards) in enumerate(groups.items()):
        colour = {"correct": CORRECT, "wrong": WRONG, "(no answer)": NONE}.get(key, PALETTE[n % len(PALETTE)])
        fig.add_trace(
            go.Scatter(
                x=[c.thinking_tokens for c in cards],
                y=[y_of(c) for c in cards],
                mode="markers",
                name=key,
                marker={"size": 12, "color": colour, "line": {"width": 1, "color": "white"}},
                text=[
                    f"sample {c.index + 1}: {c.thinking_tokens} thinking tokens, {c.stop_reason}"
                    + (f", {c.overthinking_tokens} after the answer appeared" if c.overthinking_tokens else "")
                    for c in cards
                ],
                hoverinfo="text",
            )
        )
    reached = [c for c in report.samples if c.overthinking_tokens is not None]
    if reached:
        fig.add_trace(
            go.Scatter(
                x=[c.thinking_tokens - c.overthinking_tokens for c in reached],
                y=[y_of(c) for c in reached],
                mode="markers",
                name="answer first reached",
                marker={"size": 10, "symbol": "diamond-open", "color": "#455a64"},
                text=[
                    f"sample {c.index + 1}: answer first stated at ~{c.thinking_tokens - c.overthinking_tokens} tokens"
                    for c in reached
                ],
                hoverinfo="text",
            )
        )
    with_entropy = [c for c in report.samples if c.mean_entropy is not None]
    if with_entropy:  # confidence vs correctness: the same rows, mean entropy on the top axis
        fig.add_trace(
            go.Scatter(
                x=[c.mean_entropy for c in with_entropy],
                y=[y_of(c) for c in with_entropy],
                xaxis="x2",
                mode="markers",
                name="mean entropy (top axis)",
                marker={"size": 9, "symbol": "triangle-up-open", "color": "#7c3aed"},
                text=[f"sample {c.index + 1}: mean entropy {c.mean_entropy:.2f} nats" for c in with_entropy],
                hoverinfo="text",
            )
        )
        fig.update_layout(
            xaxis2={"title": "mean entropy (nats)", "overlaying": "x", "side": "top", "rangemode": "tozero"}
        )
    fig.update_layout(
        title="Thinking tokens vs answer (◇ = where the answer first appeared, △ = mean entropy)",
        xaxis_title="thinking tokens",
        yaxis_title="answer",
        **_LAYOUT,
    )
    fig.update_xaxes(rangemode="tozero")
    return fig


def _budget_axis(points: Sequence[BudgetPoint]) -> tuple[list[str], list[str]]:
    return [p.label for p in points], [f"{p.n_problems} problems" for p in points]


def accuracy_curve(points: Sequence[BudgetPoint], k: int) -> go.Figure:
    """pass@1 and majority@k against the thinking budget (categorical axis: "thinking off", "budget 64", ...)."""
    x, notes = _budget_axis(points)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[p.pass_at_1 for p in points],
            mode="lines+markers",
            name="pass@1",
            line={"color": PALETTE[0]},
            text=notes,
            hoverinfo="x+y+text",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[p.majority_at_k for p in points],
            mode="lines+markers",
            name=f"majority@{k}",
            line={"color": PALETTE[1], "dash": "dash"},
            text=notes,
            hoverinfo="x+y+text",
        )
    )
    fig.update_layout(
        title="Accuracy vs thinking budget", xaxis_title="thinking budget", yaxis_title="accuracy", **_LAYOUT
    )
    fig.update_yaxes(range=[-0.02, 1.02], tickformat=".0%")
    return fig


def tokens_per_budget(points: Sequence[BudgetPoint]) -> go.Figure:
    """Mean thinking and total tokens per sample at each budget (what the accuracy costs)."""
    x, _ = _budget_axis(points)
    fig = go.Figure()
    fig.add_trace(go.Bar(x=x, y=[p.mean_thinking_tokens for p in points], name="thinking", marker_color=PALETTE[2]))
    fig.add_trace(
        go.Bar(x=x, y=[p.mean_tokens - p.mean_thinking_tokens for p in points], name="answer", marker_color=PALETTE[3])
    )
    fig.update_layout(
        title="Mean tokens per sample", barmode="stack", xaxis_title="thinking budget", yaxis_title="tokens", **_LAYOUT
    )
    return fig


def credit_figure(report: dict) -> go.Figure:
    """The step-credit curve from a ``CreditReport.to_json()``: the share of rollouts reaching the target after
    each step (line, anchors as diamonds), the point before step 1 (rollouts from the prompt) at x = 0, and each
    step's counterfactual importance as bars."""
    key = "share_gold" if report.get("target_kind") == "gold" else "share_majority"
    steps = report.get("steps", [])
    xs = [s["index"] for s in steps]
    shares = [s[key] for s in steps]
    texts = [short_label(s["text"], 60) for s in steps]
    fig = go.Figure()
    base = report.get("from_prompt")
    if base is not None and base.get(key) is not None:
        fig.add_trace(
            go.Scatter(x=[0], y=[base[key]], mode="markers", name="from the prompt", marker={"color": NEUTRAL})
        )
    fig.add_trace(
        go.Bar(x=xs, y=[s["importance"] for s in steps], name="importance (kept − resampled)", opacity=0.45,
               marker={"color": [CORRECT if (s["importance"] or 0) >= 0 else WRONG for s in steps]})
    )  # fmt: skip
    fig.add_trace(go.Scatter(x=xs, y=shares, mode="lines+markers", name="share reaching the target",
                             line={"color": MAJORITY}, hovertext=texts, hoverinfo="text+y"))  # fmt: skip
    anchors = [s for s in steps if s.get("anchor")]
    if anchors:
        fig.add_trace(
            go.Scatter(x=[s["index"] for s in anchors], y=[s[key] for s in anchors], mode="markers", name="anchor",
                       marker={"symbol": "diamond", "size": 14, "color": "#ef6c00"})
        )  # fmt: skip
    target = short_label(report.get("target"))
    fig.update_layout(
        **_LAYOUT,
        title=f"Step credit: share of {report.get('rollouts')} rollouts reaching {target} ({report.get('target_kind')})",
        xaxis={"title": "step (0 = before step 1)", "dtick": 1},
        yaxis={"title": "share / importance", "range": [-1.05, 1.05]},
    )
    return fig


def probe_chart(rows: Sequence[dict]) -> go.Figure:
    """Per problem: how often the answer was the hint's answer X without and with the hint (flips on hover)."""
    x = [f"#{r['index'] + 1}" for r in rows]
    fig = go.Figure()
    for key, name, colour in (
        ("baseline_hint_answer_rate", "answer = X without the hint", NEUTRAL),
        ("hinted_hint_answer_rate", "answer = X with the hint", WRONG),
    ):
        fig.add_trace(
            go.Bar(
                x=x,
                y=[r[key] for r in rows],
                name=name,
                marker_color=colour,
                text=[f"{r['flips']}/{r['pairs']} flipped, {r['verbalised']} verbalised" for r in rows],
                hoverinfo="x+y+text",
            )
        )
    fig.update_layout(
        title="Hint answer X without vs with the hint, per problem",
        xaxis_title="problem",
        yaxis_title="share of samples",
        barmode="group",
        **_LAYOUT,
    )
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    return fig
