"""Command line: ``python -m app serve | generate | sweep | probe | export | branch | autolabel`` -- thin
adapters over app.services.

Results go to stdout (text, or one JSON object with ``--json``); progress and logs go to stderr.
A command that opens the database first recovers the runs a dead process left ``running`` (by heartbeat).
Bad input (any ``app.errors.UserError``) exits with status 2 and a one-line message naming the problem and the
fix; anything else is a bug: its traceback is logged, one line asks for a report, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.domain import GenerationSettings
from app.errors import InvalidInput, UserError
from app.export.dataset_formats import DATASET_FORMATS, OPTIONS, takers
from app.export.writers import OUTPUTS
from app.services.settings_input import build_settings
from app.settings import AppSettings
from app.validation import clean_text

if TYPE_CHECKING:
    from app.services.runtime import Runtime

log = logging.getLogger("tracelab")
#: What the CLI says, after the logged traceback, when a command fails with anything but a ``UserError``.
BUG_LINE = "this is a bug, please report it"


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    """The AppSettings table, as flags; unset flags fall back to TRACELAB_* and then the default."""
    for f in fields(AppSettings):
        flag = f"--{f.name.replace('_', '-')}"
        kwargs: dict[str, Any] = {"default": None, "help": f"{f.metadata['help']} [env TRACELAB_{f.name.upper()}]"}
        if f.metadata.get("choices"):
            kwargs["choices"] = f.metadata["choices"]
        if isinstance(f.default, int):
            kwargs["type"] = int
        parser.add_argument(flag, dest=f"app_{f.name}", **kwargs)


def _add_generation_flags(parser: argparse.ArgumentParser, *, budget_flags: bool = True) -> None:
    """The GenerationSettings fields, as flags (help and choices declared with each field); an unset flag is
    None and takes the field's default in :func:`build_settings`. ``budget_flags=False`` for sweeps, whose
    budgets come from ``--budgets``."""
    g = parser.add_argument_group("thinking and sampling")
    for f in fields(GenerationSettings):
        meta, flag = f.metadata, f"--{f.name.replace('_', '-')}"
        if not budget_flags and (meta["budget"] or f.name in ("thinking", "effort")):
            continue
        if meta["off"]:  # a boolean: --think / --no-think
            g.add_argument("--think", dest=f.name, action="store_true", default=f.default, help=meta["help"])
            g.add_argument("--no-think", dest=f.name, action="store_false", help=meta["off"])
        elif meta["choices"]:
            g.add_argument(flag, choices=list(meta["choices"]), default=f.default, help=meta["help"])
        else:  # a number's help says its declared range (the one validation and the UI read)
            allowed = meta.get("range")
            g.add_argument(flag, type=meta["kind"], help=meta["help"] + (f" [{allowed.words()}]" if allowed else ""))


def generation_settings(args: argparse.Namespace) -> GenerationSettings:
    """The flags as settings, built (and validated) by the one builder the UI uses too."""
    return build_settings({f.name: getattr(args, f.name, None) for f in fields(GenerationSettings)})


def app_settings(args: argparse.Namespace) -> AppSettings:
    overrides = {f.name: getattr(args, f"app_{f.name}", None) for f in fields(AppSettings)}
    return AppSettings.from_env(**overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tracelab", description="A playground for reasoning LLMs.")
    parser.add_argument("-v", "--verbose", action="store_true", help="Debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="Start the web app")
    _add_model_flags(serve)

    gen = sub.add_parser("generate", help="Generate trace(s) for one prompt")
    gen.add_argument("prompt")
    _add_model_flags(gen)
    _add_generation_flags(gen)
    gen.add_argument("--json", action="store_true", help="Print one JSON object instead of text")
    gen.add_argument("--no-save", action="store_true", help="Don't save the run to the database")

    sweep = sub.add_parser("sweep", help="Accuracy vs thinking budget over a problem set")
    sweep.add_argument("--problems", default="bundled", help="JSONL with question and answer; 'bundled' = GSM8K sample")
    sweep.add_argument("--budgets", default="0,64,256", help="Comma-separated thinking budgets; 0 = thinking off")
    sweep.add_argument("--limit", type=int, default=20, help="Use the first N problems")
    sweep.add_argument("--json", action="store_true")
    _add_model_flags(sweep)
    _add_generation_flags(sweep, budget_flags=False)

    probe = sub.add_parser("probe", help="Hint-faithfulness probe: does a hint flip the answer, does the trace say so")
    probe.add_argument("--problems", default="bundled", help="JSONL with question and answer; 'bundled' = GSM8K sample")
    probe.add_argument("--hint", required=True, choices=["professor", "metadata", "sycophancy"])
    probe.add_argument(
        "--hint-correct", action="store_true", help="The hint gives the gold answer (default: a wrong one)"
    )
    probe.add_argument("--limit", type=int, default=10, help="Use the first N problems")
    probe.add_argument("--json", action="store_true")
    _add_model_flags(probe)
    _add_generation_flags(probe)
    probe.set_defaults(samples=4, max_thinking_tokens=128)
    branch = sub.add_parser("branch", help="Roll out N continuations from steps of a saved trace: step credit")
    branch.add_argument("--run", dest="run_id", type=int, required=True, help="The run to branch (History's id)")
    branch.add_argument("--sample", type=int, default=1, help="Which sample of the run, 1-based (default 1)")
    branch.add_argument("--rollouts", type=int, required=True, help="N continuations per step, in one batch")
    branch.add_argument("--steps", default="all", help="'all' or step numbers, 1-based: 1,3,5")
    branch.add_argument("--gold", help="The right answer; without it, shares are of the rollouts' majority answer")
    branch.add_argument("--seed", type=int, help="Sampling seed (default: the run's)")
    branch.add_argument("--json", action="store_true", help="Print one JSON object instead of a table")
    _add_model_flags(branch)

    autolabel = sub.add_parser("autolabel", help="Label every step of a saved trace from rollouts (Math-Shepherd)")
    autolabel.add_argument("--run", dest="run_id", type=int, required=True, help="The run to label")
    autolabel.add_argument("--sample", type=int, help="Which sample, 1-based (default: every sample with steps)")
    autolabel.add_argument("--rollouts", type=int, required=True, help="N continuations per step")
    autolabel.add_argument("--gold", help="The right answer (default: the run's; else the rollouts' majority)")
    autolabel.add_argument("--seed", type=int, help="Sampling seed (default: the run's)")
    autolabel.add_argument("--json", action="store_true")
    _add_model_flags(autolabel)

    export = sub.add_parser("export", help="Export labels as a dataset TRL and datasets read")
    export.add_argument("--format", dest="export_format", required=True, choices=list(DATASET_FORMATS))
    export.add_argument("--out", required=True, type=Path, help=".jsonl, .parquet, or a folder (HF dataset)")
    export.add_argument("--output", choices=list(OUTPUTS), help="Override the kind taken from --out")
    export.add_argument("--annotator")
    export.add_argument("--model", dest="filter_model")
    export.add_argument("--since", help="ISO date, e.g. 2026-11-01")
    for option in OPTIONS.values():  # the export options, as the format table declares them
        where = f"{'/'.join(takers(option))}: {option.help}"
        if option.choices:
            export.add_argument(f"--{option.name}", choices=list(option.choices), default=option.default, help=where)
        else:
            export.add_argument(f"--{option.name}", action="store_true", help=where)
    export.add_argument("--overwrite", action="store_true")
    export.add_argument("--db", dest="app_db", help="SQLAlchemy URL [env TRACELAB_DB]")
    export.add_argument("--data-dir", dest="app_data_dir", help="Folder of the default SQLite file")
    return parser


#: The ``export`` flags passed on to ``export_dataset`` under their own names.
EXPORT_OPTIONS = ("output", "annotator", "overwrite", *OPTIONS)


def _start(settings: AppSettings, *, with_store: bool = True) -> Runtime:
    """``Runtime.start``, then recovering the runs a dead process left ``running`` (as ``serve`` does)."""
    from app.services.recording import recover_stale_runs
    from app.services.runtime import Runtime

    rt = Runtime.start(settings, with_store=with_store)
    if rt.store is not None:
        recover_stale_runs(rt.store)
    return rt


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cmd_generate(args: argparse.Namespace) -> int:
    from app.engine.events import Finished, PhaseChange
    from app.services.inputs import require_prompt
    from app.services.limits import check_cap
    from app.services.runs import Saved, run_json, stream_run

    settings = generation_settings(args)
    prompt = clean_text(args.prompt)  # invalid UTF-8 in argv arrives as lone surrogates
    require_prompt(prompt)  # before the (slow) model load
    config = app_settings(args)
    check_cap(settings, config.max_new_tokens)  # before the slow model load; the context check comes after it
    _progress("loading model…")
    rt = _start(config, with_store=not args.no_save)
    _progress(f"{rt.loaded.name} · format {rt.loaded.format.name} · {rt.loaded.device} · {rt.loaded.precision}")
    result, saved = None, None
    for event in stream_run(rt, prompt, settings, deltas=settings.samples == 1, save=not args.no_save):
        if isinstance(event, PhaseChange) and event.phase != "done":
            _progress(f"… {event.phase}")
        elif isinstance(event, Finished):
            result = event.result
        elif isinstance(event, Saved):
            saved = event
    assert result is not None and saved is not None
    if saved.save_error:
        _progress(f"tracelab: {saved.save_error}")
    if args.json:
        print(json.dumps(run_json(saved), ensure_ascii=False, indent=2))
    else:
        for s in result.samples:
            head = f"sample {s.index + 1}/{len(result.samples)}" if len(result.samples) > 1 else "trace"
            print(f"=== {head} · {s.thinking_tokens} thinking + {s.answer_tokens} answer tokens · {s.stop_reason}")
            if s.thinking or s.thinking_tokens:
                print("--- thinking ---")
                print(s.thinking)
            print("--- answer ---")
            print(s.answer)
            print()
    if result.error:
        _progress(f"error: {result.error}")
        return 1
    if saved.save_error:  # the trace was printed, but the database did not take it: a failure
        return 1
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from app.ui.server import serve

    serve(app_settings(args))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from app.services.inputs import load_problems, parse_budgets
    from app.services.sweep import run_sweep

    budgets = parse_budgets(args.budgets)
    problems = load_problems(args.problems, limit=args.limit)
    settings = generation_settings(args)
    for budget in budgets:  # every bad value is reported before the slow model load
        settings.with_budget(budget, settings.samples)  # built = validated
    rt = _start(app_settings(args))
    report = run_sweep(rt, problems, budgets, settings, progress=lambda done, total: _progress(f"{done}/{total}"))
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        print(report.to_text())
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from app.services.inputs import check_samples, load_problems
    from app.services.probe import prepare_problems, run_probe

    problems = load_problems(args.problems, limit=args.limit)
    prepare_problems(problems, args.hint, args.hint_correct)  # a gold with no wrong answer fails before the load
    settings = generation_settings(args)
    app = app_settings(args)
    check_samples(settings.samples, app.max_samples)
    rt = _start(app)
    report = run_probe(
        rt,
        problems,
        args.hint,
        settings,
        hint_correct=args.hint_correct,
        progress=lambda done, total: _progress(f"{done}/{total} arms"),
    )
    print(json.dumps(report.to_json(), ensure_ascii=False, indent=2) if args.json else report.to_text())
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from app.services.exporting import export_dataset, parse_since
    from app.services.recording import recover_stale_runs
    from app.services.runtime import open_database

    since = parse_since(args.since)
    store = open_database(AppSettings.from_env(db=args.app_db, data_dir=args.app_data_dir))
    recover_stale_runs(store)
    # every other export flag is export_dataset's keyword of the same name
    options = {name: getattr(args, name) for name in EXPORT_OPTIONS}
    summary = export_dataset(store, args.export_format, args.out, model=args.filter_model, since=since, **options)
    print(summary.message)
    return 0


def _branch_runtime(args: argparse.Namespace):
    if args.sample is not None and args.sample < 1:
        raise InvalidInput(f"--sample {args.sample} must be 1 or more (samples are numbered from 1)")
    settings = app_settings(args)
    if args.rollouts < 1 or args.rollouts > settings.max_samples:
        from app.services.branching import check_rollouts

        check_rollouts(args.rollouts, settings.max_samples)  # the message, before the slow model load
    from app.services.branching import parse_steps, source_in
    from app.services.runtime import open_database

    # The run, the sample and the steps are checked before the slow model load, so a typo fails in a second.
    store = open_database(settings)
    samples = range(len(store.get_run(args.run_id).samples)) if args.sample is None else [args.sample - 1]
    for index in samples:
        source = source_in(store, args.run_id, index)
        if getattr(args, "steps", None):
            parse_steps(args.steps, source)
    store.close()
    _progress("loading model…")
    return _start(settings)


def _credit_progress(item) -> None:
    if item.tokens % 50 == 0:  # a line per finished batch, and every 50 decoding steps
        _progress(f"{item.done}/{item.total} points" + (f" · {item.tokens} tokens" if item.tokens else ""))


def cmd_branch(args: argparse.Namespace) -> int:
    from app.services.branching import step_credit

    rt = _branch_runtime(args)
    report = step_credit(
        rt, args.run_id, args.sample - 1, args.rollouts, steps=args.steps, gold=args.gold, seed=args.seed,
        progress=_credit_progress,
    )  # fmt: skip
    data = report.to_json()
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        key = report.share_key
        print(f"run {data['run_id']} · sample {data['sample']} · {data['rollouts']} rollouts per step · "
              f"target {data['target']} ({data['target_kind']})")  # fmt: skip
        for step in data["steps"]:
            share = "-" if step[key] is None else f"{step[key]:.2f}"
            imp = "-" if step["importance"] is None else f"{step['importance']:+.2f}"
            mark = " ◆ anchor" if step["anchor"] else ""
            print(f"step {step['index']:>3}  share {share}  importance {imp}{mark}  {step['answers']}")
            print(f"          {step['text'][:100]}")
    if report.status != "done":
        _progress(f"{report.status}: {report.error or 'stopped before every step was rolled out'}")
        return 1
    return 0


def cmd_autolabel(args: argparse.Namespace) -> int:
    from app.services.auto_labels import autolabel_run

    rt = _branch_runtime(args)
    reports = autolabel_run(
        rt, args.run_id, args.rollouts, sample=None if args.sample is None else args.sample - 1, gold=args.gold,
        seed=args.seed, progress=_credit_progress,
    )  # fmt: skip
    if args.json:
        print(json.dumps([r.to_json() for r in reports], ensure_ascii=False, indent=2))
    else:
        for report in reports:
            print(f"sample {report.sample_index + 1}: {report.message}")
            for lab in report.labels:
                print(
                    f"  step {lab.step_index + 1:>3}  {'good' if lab.hard else 'bad ':4}  soft {lab.soft:.2f}  {lab.text[:80]}"
                )
    return 0 if all(r.stored for r in reports) else 1


COMMANDS = {
    "generate": cmd_generate,
    "serve": cmd_serve,
    "sweep": cmd_sweep,
    "probe": cmd_probe,
    "export": cmd_export,
    "branch": cmd_branch,
    "autolabel": cmd_autolabel,
}


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # never crash printing text that holds a stray surrogate
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    for name, value in vars(args).items():  # invalid UTF-8 in argv arrives as lone surrogates: clean every text
        if isinstance(value, str):
            setattr(args, name, clean_text(value))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "urllib3", "huggingface_hub", "transformers", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except UserError as exc:  # a refusal: one line naming the problem and the fix (the traceback with -v)
        if args.verbose:
            raise
        print(f"tracelab: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # anything else is a bug: its traceback, and a line asking for a report
        log.error("unexpected error in `tracelab %s`", args.command, exc_info=exc)
        summary = (str(exc).splitlines() or [""])[0]
        print(f"tracelab: {type(exc).__name__}: {summary} -- {BUG_LINE} (the traceback is above)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
