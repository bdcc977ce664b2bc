"""Plain dataclasses that cross layer boundaries.

The engine produces them, the services pass them on, the store persists them and the
export layer turns them into dataset rows. Nothing here imports torch, SQLAlchemy or
Gradio, so every layer may depend on this module and on nothing above it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal, get_args

from app.errors import InvalidInput
from app.setting_fields import Range, setting_field

Effort = Literal["low", "medium", "high"]
Phase = Literal["thinking", "answer"]
StopReason = Literal["end", "budget_cut", "user_cut", "max_tokens", "cancelled", "error"]
Rating = Literal[-1, 0, 1]
#: A chat conversation: ``[{"role": "user", "content": "..."}, ...]`` (the one declaration; see :func:`as_messages`).
Messages = list[dict[str, str]]


def as_messages(messages: Messages | str) -> Messages:
    """A conversation from a bare prompt (one user turn) or a copy of an existing conversation."""
    return [{"role": "user", "content": messages}] if isinstance(messages, str) else list(messages)


#: Documented effort presets: (max_thinking_tokens, min_thinking_tokens).
#: "low" suits a CPU laptop, "high" is where s1-style "Wait" forcing starts to matter.
EFFORT_BUDGETS: dict[str, tuple[int, int]] = {
    "low": (256, 0),
    "medium": (1024, 0),
    "high": (4096, 512),
}

#: Largest seed: 32 bits, what every sampler and the browser's number box hold exactly.
SEED_MAX = 2**32 - 1
#: Longest short text setting: the continuation string and the answer cue.
SHORT_TEXT_MAX = 200

#: The temperature used when several samples are asked for without one (greedy copies would be identical).
SAMPLING_TEMPERATURE = 0.7

#: Every ``StopReason``, in its declared order (for menus and checks).
STOP_REASONS: tuple[str, ...] = get_args(StopReason)

#: Alternatives kept per generated token by the confidence capture (the lens shows them on hover).
TOP_ALTERNATIVES = 5
#: ``token_source`` of a sample generated on a server that returns no token probabilities (its other
#: ``token_*`` fields are None); the lens then says so instead of "saved before capture".
SERVER_NO_TOKEN_DATA = "none: the server returned no token probabilities"


@dataclass(frozen=True)
class GenerationSettings:
    """Everything that decides how one prompt is generated; stored with every run.

    ``max_thinking_tokens=None`` means "take it from ``effort``"; an explicit number wins.
    ``temperature == 0`` means greedy decoding (then ``top_p`` is ignored).

    Validated when built (and by every ``replace``/``with_``): an invalid ``GenerationSettings`` cannot exist,
    so a request is checked once, where its settings are made (the UI's controls, the CLI's flags, a stored
    run), and nothing downstream checks it again. Each field declares its default and help once (:func:`_setting`);
    ``app.services.settings_input`` reads raw inputs against them and the CLI builds its flags from them.
    """

    thinking: bool = setting_field(True, "Think first (default)", off="Answer without thinking")
    effort: Effort | None = setting_field(
        "low", "Budget preset: " + ", ".join(f"{k} = max {v[0]}/min {v[1]} thinking tokens" for k, v in EFFORT_BUDGETS.items()),
        choices=tuple(EFFORT_BUDGETS),
    )  # fmt: skip
    max_thinking_tokens: int | None = setting_field(
        None, "Cut thinking after N tokens (overrides --effort)", int, budget=True, range=Range(0)
    )
    min_thinking_tokens: int | None = setting_field(
        None, "Replace attempts to stop thinking before N tokens", int, budget=True, range=Range(0)
    )
    continuation: str = setting_field("Wait", "Text injected to keep thinking (default: Wait)")
    max_continuations: int = setting_field(8, "At most N injected continuations", range=Range(0))
    answer_cue: str = setting_field("Final Answer:", "Text forced after a budget cut")
    max_answer_tokens: int = setting_field(256, "Most answer tokens after the thinking", range=Range(1))
    temperature: float = setting_field(
        0.0, "0 = greedy (default with 1 sample, else 0.7)", range=Range(0, 5, note="greedy")
    )
    top_p: float = setting_field(
        0.95,
        "Nucleus sampling: sample from the tokens that make up P of the probability",
        range=Range(0, 1, low_open=True),
    )
    seed: int | None = setting_field(
        None, "Sampling seed (blank or -1 = not fixed)", int,
        range=Range(0, SEED_MAX, hint="(or left empty / -1 for a random one)"),
    )  # fmt: skip
    samples: int = setting_field(1, "k traces in one batched generate", range=Range(1, 64))

    def resolved_budget(self) -> tuple[int, int]:
        """Return ``(max_thinking_tokens, min_thinking_tokens)`` after applying the effort preset."""
        preset_max, preset_min = EFFORT_BUDGETS.get(self.effort or "", (EFFORT_BUDGETS["low"]))
        max_t = self.max_thinking_tokens if self.max_thinking_tokens is not None else preset_max
        min_t = self.min_thinking_tokens if self.min_thinking_tokens is not None else preset_min
        return max_t, min(min_t, max_t)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field, its value and the fix (runs when the settings are built)."""
        if self.effort is not None and self.effort not in EFFORT_BUDGETS:
            raise InvalidInput(
                f"effort={self.effort!r} is not one of low, medium, high; leave it unset for a custom budget"
            )
        for f in fields(self):
            value, allowed = getattr(self, f.name), f.metadata.get("range")
            if allowed is not None and value is not None and value not in allowed:
                raise InvalidInput(allowed.refusal(f.name, value))
        if (
            self.min_thinking_tokens is not None
            and self.max_thinking_tokens is not None
            and self.min_thinking_tokens > self.max_thinking_tokens
        ):
            raise InvalidInput(
                f"min_thinking_tokens={self.min_thinking_tokens} is larger than "
                f"max_thinking_tokens={self.max_thinking_tokens}; lower the minimum or raise the maximum"
            )
        for name in ("continuation", "answer_cue"):
            value = getattr(self, name)
            if len(value) > SHORT_TEXT_MAX:
                raise InvalidInput(f"{name} is {len(value)} characters long; use at most {SHORT_TEXT_MAX}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationSettings:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def with_(self, **changes: Any) -> GenerationSettings:
        return replace(self, **changes)

    def for_samples(self, k: int) -> GenerationSettings:
        """``samples=k``; a greedy setting becomes temperature 0.7 when k > 1, or all k traces would be identical."""
        temperature = self.temperature if self.temperature > 0 or k == 1 else SAMPLING_TEMPERATURE
        return replace(self, samples=k, temperature=temperature)

    def with_budget(self, budget: int, k: int = 1) -> GenerationSettings:
        """k samples with thinking off (``budget == 0``) or cut at ``budget`` tokens with no minimum (sweeps, compare)."""
        if budget < 0:
            raise InvalidInput(f"budget={budget} must be >= 0 (0 = thinking off)")
        if budget == 0:
            return replace(self, thinking=False).for_samples(k)
        changes = {"thinking": True, "effort": None, "max_thinking_tokens": budget, "min_thinking_tokens": None}
        return replace(self, **changes).for_samples(k)


def setting_range(name: str) -> Range:
    """The declared :class:`Range` of a numeric :class:`GenerationSettings` field (``KeyError`` if it has none)."""
    allowed = next((f.metadata.get("range") for f in fields(GenerationSettings) if f.name == name), None)
    if allowed is None:
        raise KeyError(f"{name} is not a numeric setting with a declared range")
    return allowed


def budget_label(budget: int) -> str:
    """How a thinking budget is named in reports and stored run labels."""
    return "thinking off" if budget == 0 else f"budget {budget}"


#: Why a branch run was made: ``resample`` (Branch here), ``credit`` (the step-credit curve, auto labels),
#: ``think_longer`` (Think longer).
BranchKind = Literal["resample", "credit", "think_longer"]
BRANCH_KINDS: tuple[str, ...] = get_args(BranchKind)


@dataclass(frozen=True)
class BranchLink:
    """Which stored trace a branch run continues (the one declaration of branch lineage): the parent run (None
    once it is deleted), its sample (0-based), the last step kept (0-based; -1 = the rollouts start from the
    prompt) and why it was made. ``save_run(branch=...)`` records one; the store reports it back as
    ``BranchInfo`` (the same fields plus the run and when); exports turn it into their lineage columns."""

    parent_run_id: int | None
    parent_sample_index: int
    parent_step_index: int
    kind: BranchKind = "resample"


@dataclass(frozen=True)
class TracePrefix:
    """Where a continuation starts: the trace written so far after the prompt (branching, "Think longer").

    ``thinking`` is the thinking text already written (inside the open thinking block). ``answer`` is None
    while the prefix ends inside the thinking; otherwise the thinking is closed and ``answer`` is the answer
    text already written. The thinking already written counts against the budget (the remaining budget is
    counted from the prefix) unless ``fresh_budget``, which gives the continuation a whole new budget
    ("Think longer").
    """

    thinking: str = ""
    answer: str | None = None
    fresh_budget: bool = False

    @property
    def in_answer(self) -> bool:
        return self.answer is not None


@dataclass
class TokenTrace:
    """Per-token confidence of one sample, captured while it was generated (see app.engine.confidence).

    ``labels`` has one character per token: ``t`` thinking, ``c`` thinking delimiter, ``a`` answer; upper
    case when budget forcing forced the token (then ``prob`` and ``entropy`` are None and there are no
    alternatives). ``pieces`` is each token's text (their concatenation is the sample's raw text);
    ``vocab`` gives the text of every alternative id. ``source`` says which distribution was measured.
    """

    token_ids: list[int]
    labels: str
    prob: list[float | None]
    entropy: list[float | None]
    top_ids: list[list[int]]
    top_probs: list[list[float]]
    source: str
    pieces: list[str] = field(default_factory=list)
    vocab: dict[int, str] = field(default_factory=dict)

    @classmethod
    def empty(cls, source: str) -> TokenTrace:
        return cls([], "", [], [], [], [], source)

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def forced(self) -> list[bool]:
        return [c.isupper() for c in self.labels]

    def to_json(self) -> dict[str, Any]:
        """The run JSON's per-token fields (``samples[].token_*``); all None but the source for an empty trace."""
        if not self.token_ids:
            return {**NO_TOKEN_DATA, "token_source": self.source}
        return {
            "token_text": list(self.pieces),
            "token_prob": list(self.prob),
            "token_entropy": list(self.entropy),
            "token_forced": self.forced,
            "token_phase": [{"t": "thinking", "c": "delimiter", "a": "answer"}[c.lower()] for c in self.labels],
            "token_top": [
                [[self.vocab.get(i, ""), p] for i, p in zip(ids, probs, strict=False)]
                for ids, probs in zip(self.top_ids, self.top_probs, strict=True)
            ],
            "token_source": self.source,
        }


#: What the run JSON says for a sample without token data (saved before capture, or a server without logprobs).
NO_TOKEN_DATA: dict[str, Any] = {
    "token_text": None,
    "token_prob": None,
    "token_entropy": None,
    "token_forced": None,
    "token_phase": None,
    "token_top": None,
    "token_source": None,
}


@dataclass
class SampleResult:
    """One generated trace: the raw text, its two halves, and how it went -- THE sample record.

    Every layer uses this one record: the engine fills it, ``app.store`` saves and loads it (a stored sample is
    ``StoredSample``, this plus its ids and steps), the run JSON of the API, the CLI and History is
    :func:`run_json`, the views render it. To add a per-sample field:

    1. add it here, with a default (old rows and old callers keep working);
    2. if it is saved: a column of the same name on ``app.store.models.Sample`` plus an Alembic migration --
       saving, loading and ``StoredSample`` follow by name (see :func:`sample_columns`); if it is not a column
       (kept elsewhere or not kept at all), declare it with ``field(..., metadata={"column": False})``;
    3. nothing else: ``to_dict`` and :func:`run_json` carry every field to the API, the CLI and History.
    """

    index: int
    raw_text: str
    thinking: str
    answer: str
    thinking_tokens: int
    answer_tokens: int
    stop_reason: StopReason
    continuations: int = 0
    seconds: float = 0.0
    time_to_first_token: float | None = None
    thinking_seconds: float | None = None
    tokens_per_second: float = 0.0
    error: str | None = None
    extracted_answer: str | None = None
    # Per-token confidence (app.engine.confidence); None when not captured. Saved in its own table (sample_tokens).
    tokens: TokenTrace | None = field(default=None, metadata={"column": False})

    def to_dict(self) -> dict[str, Any]:
        """Every field of the sample record (a subclass's extra fields too); the per-token data as the run
        JSON's ``token_*`` lists (see :meth:`TokenTrace.to_json`)."""
        data = asdict(replace(self, tokens=None))
        del data["tokens"]
        return {**data, **self.token_json()}

    def token_json(self) -> dict[str, Any]:
        """``token_*`` fields for the run JSON (all None without token data)."""
        return self.tokens.to_json() if self.tokens is not None else dict(NO_TOKEN_DATA)

    def to_result(self) -> SampleResult:
        """Just the sample record (drops what a subclass such as ``StoredSample`` adds)."""
        return SampleResult(**self.sample_values())

    def sample_values(self) -> dict[str, Any]:
        """The sample record's fields by name (shallow), to build a subclass record from this sample."""
        return {f.name: getattr(self, f.name) for f in fields(SampleResult)}

    @classmethod
    def failed(cls, index: int = 0, error: str | None = None) -> SampleResult:
        """A sample with nothing in it that stopped with ``error`` (a run that failed before this sample began)."""
        return cls(index=index, raw_text="", thinking="", answer="", thinking_tokens=0, answer_tokens=0,
                   stop_reason="error", error=error)  # fmt: skip


def sample_columns() -> tuple[str, ...]:
    """The :class:`SampleResult` fields saved as columns of the same name (all but ``metadata={"column": False}``)."""
    return tuple(f.name for f in fields(SampleResult) if f.metadata.get("column", True))


@dataclass
class GenerationResult:
    """What one call of the engine returns: the samples plus what produced them."""

    model: str
    format: str
    settings: GenerationSettings
    samples: list[SampleResult]
    prompt: str
    messages: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    #: How the model's weights ran: "int4" | "nf4" | "int8" | "bf16" | "fp32" (None for runs saved before it was recorded).
    precision: str | None = None


@dataclass(frozen=True)
class Step:
    """A span of a trace an annotator can rate. ``start``/``end`` index into the source text."""

    index: int
    text: str
    start: int
    end: int
    source: Phase = "thinking"


def completion_text(thinking: str, answer: str, open_tag: str = "<think>", close_tag: str = "</think>") -> str:
    """An assistant turn with its thinking kept, as the model would emit it: the one place that knows the layout
    (``<think>\\n{thinking}\\n</think>\\n\\n{answer}``), used by exports and multi-turn chat context. Just the
    answer when there was no thinking."""
    if not thinking.strip():
        return answer
    return f"{open_tag}\n{thinking}\n{close_tag}\n\n{answer}"
