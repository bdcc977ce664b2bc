"""Test-time scaling sweep: accuracy vs thinking budget over a problem set, saved and reopenable.

Owns: reading a problem set (the bundled GSM8K sample or a JSONL of ``question`` + ``answer``), parsing a
budget list, running the grid budget by budget (each problem x budget is one batched run of k samples,
saved with ``kind="sweep"``, the sweep id, the gold answer and a label such as "budget 64"), and the
``SweepReport`` -- pass@1 and majority@k per budget, mean tokens, per-problem outcomes -- built the same
way from a fresh sweep and from the store (:func:`sweep_report`), so a reopened sweep shows what the
run showed. Does not know Gradio or plotly; the CLI and the UI tab are adapters over these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.domain import GenerationResult, GenerationSettings, budget_label
from app.engine.events import CancelToken
from app.errors import InvalidInput, NotFound
from app.reasoning.answers import answers_equal
from app.reasoning.vote import pass_at_1, vote
from app.services.inputs import Problem, check_samples
from app.services.limits import check_cap
from app.services.runs import LOCAL_USER, run_prompt, run_status
from app.services.runtime import Runtime


def budget_of(settings: GenerationSettings) -> int:
    """The sweep budget a stored run was generated with (0 = thinking off)."""
    return settings.resolved_budget()[0] if settings.thinking else 0


# --- the report -----------------------------------------------------------------------------------


@dataclass
class Cell:
    """One problem at one budget: its k answers and how they scored."""

    run_id: int
    answers: list[str | None]
    correct: list[bool]
    majority: str | None
    majority_correct: bool
    thinking_tokens: list[int]
    answer_tokens: list[int]
    seconds: float
    status: str

    @property
    def pass_at_1(self) -> float:
        return pass_at_1(self.correct)


@dataclass
class BudgetPoint:
    """One point of the curves: a budget and its aggregate scores over the problems that finished."""

    budget: int
    label: str
    n_problems: int
    pass_at_1: float
    majority_at_k: float
    mean_thinking_tokens: float  # per sample
    mean_tokens: float  # thinking + answer, per sample
    mean_seconds: float  # per problem (one batched run of k)


@dataclass
class SweepReport:
    sweep_id: int
    name: str
    model: str
    k: int
    budgets: list[int]
    problems: list[Problem]
    cells: dict[tuple[int, int], Cell] = field(default_factory=dict)  # (problem index, budget) -> cell
    cancelled: bool = False

    def points(self) -> list[BudgetPoint]:
        out = []
        for budget in self.budgets:
            cells = [self.cells[(i, budget)] for i in range(len(self.problems)) if (i, budget) in self.cells]
            n = len(cells)
            samples = [t for c in cells for t in c.thinking_tokens]
            totals = [t + a for c in cells for t, a in zip(c.thinking_tokens, c.answer_tokens, strict=True)]
            out.append(
                BudgetPoint(
                    budget=budget,
                    label=budget_label(budget),
                    n_problems=n,
                    pass_at_1=sum(c.pass_at_1 for c in cells) / n if n else 0.0,
                    majority_at_k=sum(c.majority_correct for c in cells) / n if n else 0.0,
                    mean_thinking_tokens=sum(samples) / len(samples) if samples else 0.0,
                    mean_tokens=sum(totals) / len(totals) if totals else 0.0,
                    mean_seconds=sum(c.seconds for c in cells) / n if n else 0.0,
                )
            )
        return out

    def rows(self) -> list[dict[str, Any]]:
        """Per-problem outcomes, one row per problem x budget (the UI table and the JSON)."""
        rows = []
        for i, problem in enumerate(self.problems):
            for budget in self.budgets:
                cell = self.cells.get((i, budget))
                if cell is None:
                    continue
                rows.append(
                    {
                        "problem": i + 1,
                        "question": problem.question,
                        "gold": problem.gold,
                        "budget": budget,
                        "run_id": cell.run_id,
                        "answers": cell.answers,
                        "correct": sum(cell.correct),
                        "k": len(cell.answers),
                        "majority": cell.majority,
                        "majority_correct": cell.majority_correct,
                        "mean_thinking_tokens": _mean(cell.thinking_tokens),
                    }
                )
        return rows

    def to_json(self) -> dict[str, Any]:
        """The CLI's ``--json`` shape (the UI shows the same object)."""
        return {
            "sweep_id": self.sweep_id,
            "name": self.name,
            "model": self.model,
            "k": self.k,
            "budgets": self.budgets,
            "n_problems": len(self.problems),
            "cancelled": self.cancelled,
            "points": [
                {
                    "budget": p.budget,
                    "label": p.label,
                    "n_problems": p.n_problems,
                    "pass_at_1": round(p.pass_at_1, 4),
                    "majority_at_k": round(p.majority_at_k, 4),
                    "mean_thinking_tokens": round(p.mean_thinking_tokens, 1),
                    "mean_tokens": round(p.mean_tokens, 1),
                    "mean_seconds": round(p.mean_seconds, 2),
                }
                for p in self.points()
            ],
            "problems": self.rows(),
        }

    def to_text(self) -> str:
        head = f"sweep {self.sweep_id} · {self.model} · {len(self.problems)} problems · k={self.k}"
        lines = [head + (" · CANCELLED (partial)" if self.cancelled else ""), ""]
        lines.append(
            f"{'budget':>12} {'problems':>8} {'pass@1':>8} {'maj@k':>8} {'think tok':>10} {'tokens':>8} {'s/prob':>7}"
        )
        for p in self.points():
            lines.append(
                f"{p.label:>12} {p.n_problems:>8} {p.pass_at_1:>8.1%} {p.majority_at_k:>8.1%} "
                f"{p.mean_thinking_tokens:>10.1f} {p.mean_tokens:>8.1f} {p.mean_seconds:>7.2f}"
            )
        return "\n".join(lines)


def _mean(values: Sequence[int]) -> float:
    return round(sum(values) / len(values), 1) if values else 0.0


def make_cell(run_id: int, result: GenerationResult, gold: str, status: str) -> Cell:
    answers = [s.extracted_answer for s in result.samples]
    outcome = vote(answers, gold)
    return Cell(
        run_id=run_id,
        answers=answers,
        correct=[answers_equal(a, gold) for a in answers],
        majority=outcome.majority,
        majority_correct=bool(outcome.majority_correct),
        thinking_tokens=[s.thinking_tokens for s in result.samples],
        answer_tokens=[s.answer_tokens for s in result.samples],
        seconds=result.seconds,
        status=status,
    )


# --- running and reopening ------------------------------------------------------------------------


def run_sweep(
    rt: Runtime,
    problems: Sequence[Problem],
    budgets: Sequence[int],
    settings: GenerationSettings,
    *,
    progress: Callable[[int, int], None] | None = None,
    cancel: CancelToken | None = None,
    name: str | None = None,
    user: str | None = LOCAL_USER,
) -> SweepReport:
    """Run every problem at every budget (budget by budget, so a cancelled sweep has whole early points).

    Each cell is one batched generate of ``settings.samples`` samples, saved as a run. ``progress(done,
    total)`` is called before the first cell and after each one. After a cancel the current cell is saved
    as cancelled and left out of the scores; the report says ``cancelled=True``.
    """
    if not problems:
        raise InvalidInput("the problem set is empty; load at least one problem")
    budgets = sorted(set(budgets))
    if not budgets or any(b < 0 for b in budgets):
        raise InvalidInput(f"budgets {list(budgets)} must be one or more numbers >= 0 (0 = thinking off)")
    k = check_samples(settings.samples, rt.settings.max_samples)
    plans = {budget: settings.with_budget(budget, k) for budget in budgets}  # built = validated, before any run
    for plan in plans.values():
        check_cap(plan, rt.settings.max_new_tokens)
    name = name or f"{len(problems)} problems × budgets {','.join(map(str, budgets))} × k={k}"
    sweep_settings = {"budgets": list(budgets), "k": k, "base": settings.to_dict()}
    sweep_id = rt.db.create_sweep(name, sweep_settings, [p.to_dict() for p in problems])
    report = SweepReport(sweep_id, name, rt.loaded.name, k, list(budgets), list(problems))
    total, done = len(budgets) * len(problems), 0
    if progress:
        progress(done, total)
    for budget in budgets:
        for i, problem in enumerate(problems):
            if cancel is not None and cancel.cancelled:
                report.cancelled = True
                return report
            saved = run_prompt(
                rt,
                problem.question,
                plans[budget],
                cancel,
                kind="sweep",
                gold=problem.gold,
                sweep_id=sweep_id,
                label=budget_label(budget),
                user=user,
            )
            status = run_status(saved.result)
            if status == "cancelled":
                report.cancelled = True
                return report
            report.cells[(i, budget)] = make_cell(saved.run_id, saved.result, problem.gold, status)
            done += 1
            if progress:
                progress(done, total)
    return report


def sweep_report(rt: Runtime, sweep_id: int) -> SweepReport:
    """Rebuild a sweep's report from the store: the same figures the run printed.

    Runs map to problems by their prompt text (in grid order, so repeated questions keep their slots)
    and to budgets by their settings; a cancelled run or a missing cell marks the sweep partial.
    """
    summary = next((s for s in rt.db.list_sweeps() if s.sweep_id == sweep_id), None)
    if summary is None:
        raise NotFound(f"sweep {sweep_id} does not exist; pick one from the list of past sweeps")
    runs = rt.db.sweep_runs(sweep_id)
    problems = [Problem(question=p["question"], gold=p["gold"]) for p in summary.problems]
    budgets = [int(b) for b in summary.settings.get("budgets", [])] or sorted({budget_of(r.settings) for r in runs})
    k = int(summary.settings.get("k", runs[0].settings.samples if runs else 1))
    model = runs[0].model if runs else "?"
    report = SweepReport(sweep_id, summary.name, model, k, budgets, problems)
    slots: dict[str, list[int]] = {}
    for i, p in enumerate(problems):
        slots.setdefault(p.question, []).append(i)
    for run in runs:
        budget = budget_of(run.settings)
        if run.status == "cancelled":
            report.cancelled = True
            continue
        free = [i for i in slots.get(run.prompt, []) if (i, budget) not in report.cells]
        if not free or budget not in budgets:
            continue  # a run that matches no grid cell (should not happen): leave it out of the scores
        gold = run.gold or problems[free[0]].gold
        report.cells[(free[0], budget)] = make_cell(run.run_id, run.to_result(), gold, run.status)
    if len(report.cells) < len(problems) * len(budgets):
        report.cancelled = True
    return report


def list_sweep_summaries(rt: Runtime) -> list[dict[str, Any]]:
    """Past sweeps, newest first, as rows for a picker: id, name, when, problems, budgets, k, runs saved."""
    return [
        {
            "sweep_id": s.sweep_id,
            "name": s.name,
            "created_at": s.created_at.isoformat(timespec="seconds"),
            "problems": len(s.problems),
            "budgets": ",".join(str(b) for b in s.settings.get("budgets", [])),
            "k": s.settings.get("k"),
            "runs": s.n_runs,
        }
        for s in rt.db.list_sweeps()
    ]
