"""Automatic step labels (Math-Shepherd): label every step of a sample from rollouts, and compare with people.

Owns: running N rollouts from after every step of a sample (through :func:`app.services.branching.step_credit`),
turning the shares into soft/hard labels with source ``auto:mc``, refusing to store anything when there is no
target (no gold answer and no rollout answered), the suggestions the Annotate view pre-fills, and the
human-vs-auto agreement (Cohen's kappa, per annotator and pooled).
Automatic labels are stored apart from human ones and never carry an annotator's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.engine.events import CancelToken
from app.errors import InvalidInput
from app.reasoning.agreement import AgreementReport, cohen_kappa
from app.reasoning.credit import math_shepherd
from app.services.branching import CreditProgress, load_source, save_point, step_credit
from app.services.runs import LOCAL_USER
from app.services.runtime import Runtime
from app.store.models import AUTO_MC
from app.store.records import AutoLabelRecord
from app.store.repository import Store

AUTO_NAME = "auto (rollouts)"  # how the agreement view names the machine side; never an annotator


@dataclass
class StepAutoLabel:
    step_index: int  # 0-based
    step_id: int
    text: str
    soft: float
    hard: bool


@dataclass
class AutoLabelReport:
    run_id: int
    sample_index: int
    sample_id: int
    rollouts: int
    target: str | None
    target_kind: str
    labels: list[StepAutoLabel] = field(default_factory=list)
    stored: bool = False
    status: str = "done"
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "sample": self.sample_index + 1,
            "rollouts": self.rollouts,
            "source": AUTO_MC,
            "target": self.target,
            "target_kind": self.target_kind,
            "stored": self.stored,
            "status": self.status,
            "message": self.message,
            "steps": [
                {"index": lab.step_index + 1, "text": lab.text, "soft": lab.soft, "hard": lab.hard}
                for lab in self.labels
            ],
        }


def autolabel_sample(
    rt: Runtime,
    run_id: int,
    sample_index: int,
    n: int,
    *,
    gold: str | None = None,
    seed: int | None = None,
    cancel: CancelToken | None = None,
    progress: Callable[[CreditProgress], None] | None = None,
    user: str | None = LOCAL_USER,
) -> AutoLabelReport:
    """Label every step of the sample from N rollouts each; store the labels and the rollout runs.

    The target is the gold answer (``gold``, else the run's), or else the majority of the rollouts. With
    neither, a ``ValueError`` says so and nothing (no label, no rollout run) is stored; a cancel stores nothing.
    """
    source = load_source(rt, run_id, sample_index)
    report = step_credit(
        rt, run_id, sample_index, n, gold=gold, seed=seed, cancel=cancel, with_importance=False, save=False,
        progress=progress,
    )  # fmt: skip
    out = AutoLabelReport(
        run_id=run_id,
        sample_index=sample_index,
        sample_id=source.sample.sample_id,
        rollouts=n,
        target=report.curve.target,
        target_kind=report.curve.target_kind,
        status=report.status,
    )
    if report.status != "done":
        out.message = (
            f"Auto-labelling {report.status}" + (f": {report.error}" if report.error else "") + "; nothing stored."
        )
        return out
    if report.curve.target is None:
        raise InvalidInput(
            f"no gold answer and no majority for sample {sample_index + 1} of run {run_id}: none of the "
            f"{n * len(report.steps)} rollouts gave an answer, so nothing was stored. Pass the gold answer "
            "(--gold ANSWER), or use more rollouts or a larger thinking budget"
        )
    target_gold = report.curve.target_kind == "gold"
    for k in report.steps:
        point = report.curve.point(k)
        assert point is not None and point.share is not None
        soft, hard = math_shepherd(point.share)
        step = source.steps[k]
        out.labels.append(StepAutoLabel(k, step.step_id, step.text, soft, hard))
    for k in report.steps:  # the rollouts behind the labels, as branch runs (reopenable from History)
        save_point(rt, report, k, report.curve.target if target_gold else None, user=user)
    settings = report.results[report.steps[0]].settings
    rt.db.add_auto_labels(
        source.sample.sample_id,
        [(lab.step_id, lab.soft) for lab in out.labels],
        rollouts=n,
        target=report.curve.target,
        target_kind=report.curve.target_kind,
        settings={
            "n": n,
            "model": rt.loaded.name,
            "generation": settings.to_dict(),
            "branch_runs": [[k + 1, report.branch_runs.get(k)] for k in report.steps],
        },
    )
    out.stored = True
    against = f"gold answer {report.curve.target}" if target_gold else f"majority answer {report.curve.target}"
    good = sum(lab.hard for lab in out.labels)
    out.message = (
        f"Stored {len(out.labels)} auto labels ({AUTO_MC}, N={n}, against the {against}): "
        f"{good} good, {len(out.labels) - good} bad."
    )
    return out


def autolabel_run(
    rt: Runtime, run_id: int, n: int, *, sample: int | None = None, gold: str | None = None, **kwargs: Any
) -> list[AutoLabelReport]:
    """Auto-label one sample (0-based ``sample``) or every sample with steps of the run."""
    if sample is not None:
        return [autolabel_sample(rt, run_id, sample, n, gold=gold, **kwargs)]
    run = rt.db.get_run(run_id)
    indexes = [s.index for s in run.samples if s.steps]
    if not indexes:
        raise InvalidInput(f"run {run_id} has no sample with steps, so there is nothing to label; pick another run")
    return [autolabel_sample(rt, run_id, i, n, gold=gold, **kwargs) for i in indexes]


def suggestions(store: Store, sample_id: int) -> dict[int, AutoLabelRecord]:
    """{step_id: current auto label}: what Annotate pre-fills as suggestions (a click confirms or overrides)."""
    return store.current_auto_labels(sample_id)


def human_as_good(rating: int) -> bool:
    """A person's rating as the hard auto label's two classes: -1 = bad; +1 and 0 (neutral, not an error, as
    the PRM export's default) = good."""
    return rating >= 0


def human_vs_auto(store: Store, sample_id: int | None = None) -> list[AgreementReport]:
    """Cohen's kappa between each annotator and the automatic hard labels on the steps both labelled, then
    every annotator pooled (``annotator_a = "all annotators"``). ``annotator_b`` is always :data:`AUTO_NAME`."""
    auto = store.auto_hard_labels(sample_id)
    humans: dict[str, dict[int, int]] = store.step_ratings_by_annotator(sample_id)
    reports: list[AgreementReport] = []
    pooled_a: list[int] = []
    pooled_b: list[int] = []
    pooled_steps: list[int] = []
    pooled_dis: list[int] = []
    for name in sorted(humans):
        shared = sorted(set(humans[name]) & set(auto))
        if not shared:
            continue
        a = [int(human_as_good(humans[name][s])) for s in shared]
        b = [int(auto[s]) for s in shared]
        dis = [s for s, x, y in zip(shared, a, b, strict=True) if x != y]
        reports.append(
            AgreementReport(name, AUTO_NAME, len(shared), 1 - len(dis) / len(shared), cohen_kappa(a, b), dis)
        )
        pooled_a += a
        pooled_b += b
        pooled_steps += shared
        pooled_dis += dis
    if len(reports) > 1:
        n = len(pooled_a)
        reports.append(
            AgreementReport(
                "all annotators",
                AUTO_NAME,
                n,
                1 - len(pooled_dis) / n,
                cohen_kappa(pooled_a, pooled_b),
                sorted(set(pooled_dis)),
            )
        )
    return reports
