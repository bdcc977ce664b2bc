"""The dataset formats: one table (:data:`DATASET_FORMATS`) that the CLI, the Export tab and the export service read,
and the options an export takes, checked in one place (:func:`check_options`).

Each :class:`ExportFormat` names the format, says what it is for, which store query feeds it (a method of
``app.services.exporting.ExportSource``), how its rows are built (``app.export.rows`` and its siblings), which
options it takes and what to tell a person whose selection yields no rows. Each :class:`ExportOption` is declared
once: its default, its allowed values, its help, and what a format that does not take it does with it (refuses a
value other than the default, naming the fix, or ignores it). Adding a format is one entry here (plus its row
builder and Arrow schema); adding an option is one :class:`ExportOption`, one :class:`ExportOptions` field and
the entries that take it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from app.export.auto_rows import LABEL_SOURCES, prm_rows_by_source
from app.export.lineage import Lineages
from app.export.prm800k import prm800k_rows
from app.export.rows import NEUTRAL_POLICIES, ExportError, ExportFilters, RowBatch, kto_rows, preference_rows, sft_rows
from app.export.tally import ExportTally

#: The store queries that feed exports (methods of ``ExportSource``).
Query = Literal["labelled_samples", "preference_pairs", "verdict_samples", "auto_labelled_samples"]
#: The records of an export (or of one page of it), by the query that returned them.
Records = Mapping[str, Sequence[Any]]


@dataclass(frozen=True)
class ExportOption:
    """One export option: its default, its allowed values (none: a switch), its help, and its refusals."""

    name: str
    default: Any
    help: str  # what it does (the CLI prefixes the formats that take it)
    choices: tuple[str, ...] = ()
    why: str = ""  # said after a value that is not one of ``choices``
    elsewhere: str = ""  # refuses a non-default value where the format doesn't take it ("" = ignored there)

    def check(self, value: Any, fmt: ExportFormat) -> None:
        """An :class:`ExportError` for a value not allowed, or a non-default one ``fmt`` can't take."""
        if self.choices and value not in self.choices:
            why = f" ({self.why})" if self.why else ""
            raise ExportError(f"{self.name}={value!r} is not one of {', '.join(self.choices)}{why}")
        if self.elsewhere and value != self.default and self not in fmt.options:
            raise ExportError(self.elsewhere.format(value=value, formats=" or ".join(takers(self))))


NEUTRAL = ExportOption(
    "neutral", "true", "how a 0 (neutral) step is labelled", NEUTRAL_POLICIES, why="how 0-rated steps are labelled"
)
CONVERSATIONAL = ExportOption("conversational", False, "message lists instead of strings")
SOURCE = ExportOption(
    "source",
    "human",
    "people's labels, automatic (auto:mc rollout) labels, or both, with provenance columns",
    LABEL_SOURCES,
    elsewhere="source={value!r} works with format {formats} only (automatic labels are step labels); "
    "use --format {formats}",
)
SOFT = ExportOption(
    "soft",
    False,
    "float labels (auto: the share of rollouts)",
    elsewhere="--soft (float step labels) works with format {formats} only; use --format {formats}",
)
#: Every export option, in the order they are checked and listed.
OPTIONS: dict[str, ExportOption] = {o.name: o for o in (NEUTRAL, CONVERSATIONAL, SOURCE, SOFT)}


@dataclass(frozen=True)
class ExportOptions:
    """The checked options of one export (see :data:`OPTIONS`); build it with :func:`check_options`."""

    neutral: str = NEUTRAL.default
    conversational: bool = CONVERSATIONAL.default
    source: str = SOURCE.default
    soft: bool = SOFT.default

    @property
    def provenance(self) -> bool:
        """Whether rows say whose labels they carry (any label source but people's alone)."""
        return self.source != SOURCE.default


#: The store queries of each label source (a ``prm`` export's ``source`` option).
LABEL_QUERIES: dict[str, tuple[Query, ...]] = {
    "human": ("labelled_samples",),
    "auto": ("auto_labelled_samples",),
    "both": ("labelled_samples", "auto_labelled_samples"),
}
#: What an empty selection of automatic labels is called, and how a person makes some (human: the format's own).
_AUTO_EMPTY = {"auto": "auto-labelled samples", "both": "labelled or auto-labelled samples"}
_AUTOLABEL_FIRST = "run `python -m app autolabel --run RUN_ID --rollouts N` (or Auto-label in Annotate) first"

#: Builds a format's rows from its records (by query), its options and the branch lineage of the records' runs;
#: a streamed export calls it once per page of records (every count a batch reports adds up across pages).
Builder = Callable[[Records, ExportOptions, Lineages | None], RowBatch]


@dataclass(frozen=True)
class ExportFormat:
    """One export format: its name, a one-line description, its store query, its row builder, the options it takes
    and its empty hint."""

    name: str
    description: str
    query: Query  # what feeds it (where it takes a ``source``, the label source picks the queries instead)
    build: Builder
    empty: str  # what the empty-selection message calls its input
    hint: str  # how a person makes some
    options: tuple[ExportOption, ...] = ()

    @property
    def conversational(self) -> bool:
        """Has a conversational (message-list) form."""
        return CONVERSATIONAL in self.options

    def queries(self, options: ExportOptions) -> tuple[Query, ...]:
        """The store queries whose records feed this export."""
        return LABEL_QUERIES[options.source] if SOURCE in self.options else (self.query,)

    def rows(
        self, records: Records, *, options: ExportOptions | None = None, filters: ExportFilters | None = None,
        lineage: Lineages | None = None,
    ) -> RowBatch:  # fmt: skip
        """The rows of ``records`` ({query: its records}; ``lineage``: {run id: branch link} of the branch runs among
        them); never an empty batch (an :class:`ExportError` naming the filters instead)."""
        options = options or ExportOptions()
        batch = self.build(records, options, lineage)
        if batch.rows:
            return batch
        raise self.nothing_to_write(batch, filters or ExportFilters(), options)

    def nothing_to_write(
        self, batch: RowBatch | ExportTally, filters: ExportFilters, options: ExportOptions
    ) -> ExportError:
        """The error for a selection that gave no rows (``batch``: its rows, or what a streamed export counted):
        what matched nothing, or why every match was skipped."""
        where = filters.describe()
        if SOURCE in self.options and options.provenance:
            skipped = f" ({batch.skipped} skipped: {batch.skip_summary})" if batch.skipped else ""
            what = _AUTO_EMPTY[options.source]
            return ExportError(f"No {what} match ({where}){skipped}: {_AUTOLABEL_FIRST}, or widen the filters.")
        if batch.skipped:
            return ExportError(
                f"No {self.name} rows to write: the {batch.skipped} samples matching ({where}) were all skipped "
                f"({batch.skip_summary}). Finish labelling them in the Annotate tab, or widen the filters."
            )
        return ExportError(f"No {self.empty} match ({where}): {self.hint}, or widen the filters.")


def _prm(records: Records, options: ExportOptions, lineage: Lineages | None) -> RowBatch:
    human, auto = records.get("labelled_samples", ()), records.get("auto_labelled_samples", ())
    return prm_rows_by_source(
        human, auto, source=options.source, neutral=options.neutral, soft=options.soft, lineage=lineage
    )


_LABEL_FIRST = "label some steps in the Annotate tab first"

#: Every export format by name, in the order the CLI, the UI and the card list them.
DATASET_FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat(
            "prm",
            "TRL stepwise supervision for process reward models: prompt, completions (steps), labels (bool per step)",
            "labelled_samples",
            _prm,
            "labelled samples",
            _LABEL_FIRST,
            options=(NEUTRAL, SOURCE, SOFT),
        ),
        ExportFormat(
            "preference",
            "TRL preference pairs for DPO / reward modelling: prompt, chosen, rejected",
            "preference_pairs",
            lambda records, options, lineage: preference_rows(
                records["preference_pairs"], options.conversational, lineage
            ),
            "preference pairs",
            "pick the better of two traces in the Annotate tab first",
            options=(CONVERSATIONAL,),
        ),
        ExportFormat(
            "kto",
            "TRL unpaired preference for KTO: prompt, completion, label (a person's correct/incorrect verdict)",
            "verdict_samples",
            lambda records, options, lineage: kto_rows(records["verdict_samples"], options.conversational, lineage),
            "samples with a correct/incorrect verdict",
            "mark some samples correct or incorrect in the Annotate tab first",
            options=(CONVERSATIONAL,),
        ),
        ExportFormat(
            "sft",
            "Supervised fine-tuning conversations (thinking kept) from samples a person marked correct",
            "verdict_samples",
            lambda records, options, lineage: sft_rows(records["verdict_samples"], lineage),
            "samples marked correct",
            "mark some samples correct in the Annotate tab first",
        ),
        ExportFormat(
            "prm800k",
            "PRM800K-like step ratings (-1/0/+1) with annotator, comments and timing; lossless",
            "labelled_samples",
            lambda records, options, lineage: prm800k_rows(records["labelled_samples"], lineage),
            "labelled samples",
            _LABEL_FIRST,
        ),
    )
}


def get_format(name: str) -> ExportFormat:
    """The format called ``name``; an :class:`ExportError` listing the formats otherwise."""
    try:
        return DATASET_FORMATS[name]
    except KeyError:
        raise ExportError(f"format={name!r} is not one of {', '.join(DATASET_FORMATS)}") from None


def check_options(fmt: str, **given: Any) -> tuple[ExportFormat, ExportOptions]:
    """The format called ``fmt`` and its options, checked in this one place: an :class:`ExportError` (one sentence
    naming the fix) for an unknown format or option, a value an option does not allow, or a ``source``/``soft``
    the format can't take. A ``neutral`` or ``conversational`` the format has no use for is ignored."""
    spec = get_format(fmt)
    for name in given:
        if name not in OPTIONS:
            raise ExportError(f"{name!r} is not an export option; the options are {', '.join(OPTIONS)}")
    values = {name: given.get(name, option.default) for name, option in OPTIONS.items()}
    for name, option in OPTIONS.items():
        option.check(values[name], spec)
    switches = {name: bool(values[name]) for name, option in OPTIONS.items() if not option.choices}
    return spec, ExportOptions(**(values | switches))


def takers(option: ExportOption) -> list[str]:
    """The formats that take ``option`` (the CLI's help names them)."""
    return [name for name, f in DATASET_FORMATS.items() if option in f.options]
