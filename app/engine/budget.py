"""Budget forcing ("s1: Simple test-time scaling") as one transformers ``LogitsProcessor``: the local engine's
application of the budget rulebook (app.engine.rulebook), token by token.

The processor keeps a small state machine per batch row -- the rulebook's phases -- and steers
``model.generate`` by forcing tokens, so the KV cache is reused across every forced transition and
no text is ever re-encoded:

1. while thinking, end-of-sequence is never sampled: if it is the model's top choice the end
   delimiter (and the answer cue) is forced instead, so every sample ends with an answer;
2. while below ``min_thinking`` (and fewer than ``max_continuations`` were used), an attempt to end
   thinking -- the close tag or end-of-sequence being the top choice -- is replaced by the
   continuation string ("Wait");
3. when ``max_thinking`` thinking tokens were written, the end delimiter and cue are forced: the
   thinking token count never exceeds the budget;
4. in the answer, end-of-sequence is forced after ``max_answer`` tokens;
5. when a :class:`~app.engine.events.SteerToken` asks to stop thinking, a row still thinking gets the end
   delimiter and cue forced from the next token on (``user_cut``), dropping a queued "Wait".

A row may start part-way through a trace (branching from a step): ``starts`` gives each row's phase and
the thinking/answer tokens already written, which count against the budget exactly like generated ones.

Thinking tokens are the tokens generated inside the thinking block, injected continuations
included, the close delimiter excluded. Answer tokens include the forced cue. Knows nothing about
prompts, streaming or storage.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import LogitsProcessor

from app.domain import GenerationSettings
from app.engine.rulebook import (
    ANSWER,
    ANSWER_TEXT,
    DELIMITER,
    DONE,
    THINKING,
    THINKING_TEXT,
    Budget,
    RowStart,
    SampleCounts,
    continuation_text,
    end_delimiter,
)
from app.engine.special_tokens import tag_start_ids


@dataclass(frozen=True)
class BudgetPlan:
    """The token-level policy for one generate call: the rulebook's :class:`Budget` and the ids it forces."""

    thinking: bool
    budget: Budget
    close_tag: str
    continuation_ids: tuple[int, ...]
    end_ids: tuple[int, ...]
    cue_ids: tuple[int, ...]
    stop_ids: tuple[int, ...]
    tag_start_ids: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.stop_ids:
            raise ValueError("stop_ids is empty: the tokenizer defines no end-of-sequence token")
        if self.thinking and not self.end_ids:
            raise ValueError("end_ids is empty: the format's close tag encodes to no tokens")

    @property
    def forced_tokens(self) -> int:
        """The most tokens a budget cut forces beyond the budget: the end delimiter, the cue and one more."""
        return len(self.end_ids) + len(self.cue_ids) + 1

    @classmethod
    def build(
        cls,
        tokenizer: Any,
        *,
        thinking: bool,
        max_thinking: int,
        min_thinking: int,
        max_continuations: int,
        max_answer: int,
        close_tag: str,
        continuation: str,
        answer_cue: str,
        stop_ids: list[int],
    ) -> BudgetPlan:
        budget = Budget(max_thinking, min_thinking, max_continuations, max_answer)
        return cls.of(tokenizer, budget, thinking, close_tag, continuation, answer_cue, stop_ids)

    @classmethod
    def for_settings(
        cls, tokenizer: Any, settings: GenerationSettings, close_tag: str, stop_ids: list[int], extra_thinking: int = 0
    ) -> BudgetPlan:
        """The plan ``settings`` ask for (``extra_thinking``: see :meth:`Budget.of`)."""
        budget = Budget.of(settings, extra_thinking=extra_thinking)
        return cls.of(
            tokenizer, budget, settings.thinking, close_tag, settings.continuation, settings.answer_cue, stop_ids
        )

    @classmethod
    def of(
        cls,
        tokenizer: Any,
        budget: Budget,
        thinking: bool,
        close_tag: str,
        continuation: str,
        answer_cue: str,
        stop_ids: list[int],
    ) -> BudgetPlan:
        def enc(text: str) -> tuple[int, ...]:
            return tuple(tokenizer.encode(text, add_special_tokens=False)) if text else ()

        return cls(
            thinking=thinking,
            budget=budget,
            close_tag=close_tag,
            continuation_ids=enc(continuation_text(continuation)),
            end_ids=enc(end_delimiter(close_tag)),
            cue_ids=enc(answer_cue),
            stop_ids=tuple(stop_ids),
            tag_start_ids=tuple(tag_start_ids(tokenizer, close_tag)),
        )


@dataclass
class RowState(SampleCounts):
    """What one batch row has generated so far (ids with their labels), and what it must do next."""

    phase: str
    ids: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    queue: deque = field(default_factory=deque)
    forced_label: str | None = None


class ThinkingBudgetProcessor(LogitsProcessor):
    """Apply a :class:`BudgetPlan` to every row of a batch (see the module docstring for the rules)."""

    def __init__(
        self,
        plan: BudgetPlan,
        tokenizer: Any,
        batch_size: int,
        prompt_length: int,
        *,
        starts: Sequence[RowStart] | None = None,
        steer: Any = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        if starts is not None and len(starts) != batch_size:
            raise ValueError(f"got {len(starts)} row starts for batch_size={batch_size}; pass one per row")
        self.plan = plan
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.steer = steer  # a SteerToken, read before every token
        if steer is not None:
            steer.attach(lambda: self.generated)
        first = THINKING if plan.thinking else ANSWER
        self.rows = [
            RowState(phase=start.phase, thinking_tokens=start.thinking_tokens, answer_tokens=start.answer_tokens)
            if start is not None
            else RowState(phase=first)
            for start in (starts or [None] * batch_size)
        ]
        self.generated = 0  # positions ingested so far
        #: Per row, whether this step's token was forced by the last call (read by the confidence capture).
        self.last_forced = [False] * batch_size
        #: Held while a step is ingested, so a reader sees each row's ids and phase from the same step.
        self.lock = threading.Lock()
        self._stop = set(plan.stop_ids)
        self._tag_start = set(plan.tag_start_ids)
        self._stop_index = torch.tensor(plan.stop_ids, dtype=torch.long)
        self._tag_index = torch.tensor(plan.tag_start_ids or [], dtype=torch.long)
        self._tail_window = len(tokenizer.encode(plan.close_tag, add_special_tokens=False)) + 3

    # -- bookkeeping ------------------------------------------------------------------------------

    def sync(self, input_ids: torch.Tensor) -> None:
        """Ingest every generated position of ``input_ids`` not seen yet."""
        total = input_ids.shape[1] - self.prompt_length
        while self.generated < total:
            column = input_ids[:, self.prompt_length + self.generated].tolist()
            self.ingest_step(column)

    def ingest_step(self, tokens: list[int]) -> None:
        """Record one decoding step (one token per row)."""
        now = time.perf_counter()
        with self.lock:
            self.generated += 1
            for row, token in zip(self.rows, tokens, strict=True):
                if row.phase != DONE:
                    self._ingest(row, int(token), now)

    def snapshot(self) -> list[tuple[list[int], str]]:
        """Each row's generated ids and phase, consistent with each other (for a reader thread)."""
        with self.lock:
            return [(list(row.ids), row.phase) for row in self.rows]

    def _ingest(self, row: RowState, token: int, now: float) -> None:
        label = row.forced_label or (THINKING_TEXT if row.phase == THINKING else ANSWER_TEXT)
        row.forced_label = None
        if row.first_token_at is None:
            row.first_token_at = now
        if row.phase == ANSWER and token in self._stop:
            row.phase, row.done_at = DONE, now
            return
        row.ids.append(token)
        row.labels.append(label)
        if row.phase == THINKING:
            if label == THINKING_TEXT:
                row.thinking_tokens += 1
                self._detect_natural_close(row, now)
            elif label == DELIMITER and not any(lab == DELIMITER for _, lab in row.queue):
                row.phase, row.thinking_done_at = ANSWER, now
        else:
            row.answer_tokens += 1

    def _detect_natural_close(self, row: RowState, now: float) -> None:
        tail = row.ids[-self._tail_window :]
        if self.plan.close_tag not in self.tokenizer.decode(tail, skip_special_tokens=False):
            return
        for k in range(1, len(tail) + 1):  # the shortest suffix holding the tag = the delimiter tokens
            if self.plan.close_tag in self.tokenizer.decode(tail[-k:], skip_special_tokens=False):
                break
        row.labels[-k:] = [DELIMITER] * k
        row.thinking_tokens -= k
        row.phase, row.thinking_done_at = ANSWER, now

    # -- the processor ----------------------------------------------------------------------------

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.sync(input_ids)
        plan = self.plan
        top = scores.argmax(dim=-1).tolist()
        self.last_forced = [False] * len(self.rows)
        stop_now = self.steer is not None and self.steer.stop_requested
        for r, row in enumerate(self.rows):
            if row.phase == DONE:
                continue
            if stop_now and row.phase == THINKING and not any(lab == DELIMITER for _, lab in row.queue):
                row.queue.clear()  # a queued "Wait" is dropped: the person asked to stop
                row.user_cut = True
                self.steer.mark_acted(self.generated)
                self._queue_end(row)
            if not row.queue and row.phase == THINKING:
                self._plan_thinking(row, scores, r, top[r])
            elif not row.queue and row.phase == ANSWER and plan.budget.answer_spent(row.answer_tokens):
                row.answer_capped = True
                row.queue.append((plan.stop_ids[0], ANSWER_TEXT))
            if row.queue:
                token, row.forced_label = row.queue.popleft()
                self.last_forced[r] = True
                scores[r, :] = -float("inf")
                scores[r, token] = 0.0
        return scores

    def _plan_thinking(self, row: RowState, scores: torch.Tensor, r: int, top: int) -> None:
        plan, budget = self.plan, self.plan.budget
        if budget.thinking_spent(row.thinking_tokens):
            row.cut = True
            self._queue_end(row)
            return
        scores[r, self._stop_index.to(scores.device)] = -float("inf")
        below_min = budget.wants_more_thinking(row.thinking_tokens, row.continuations)
        if below_min and len(self._tag_index):
            scores[r, self._tag_index.to(scores.device)] = -float("inf")
        wants_to_end = top in self._stop or (below_min and top in self._tag_start)
        if not wants_to_end:
            return
        if below_min:
            if budget.continuation_fits(row.thinking_tokens, len(plan.continuation_ids)):
                row.continuations += 1
                row.queue.extend((tok, THINKING_TEXT) for tok in plan.continuation_ids)
            # otherwise the masks above make the model take its next choice and keep thinking
        elif top in self._stop:
            self._queue_end(row)

    def _queue_end(self, row: RowState) -> None:
        row.queue.extend((tok, DELIMITER) for tok in self.plan.end_ids)
        row.queue.extend((tok, ANSWER_TEXT) for tok in self.plan.cue_ids)
