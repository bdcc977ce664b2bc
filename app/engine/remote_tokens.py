"""Per-token data from a server: OpenAI-completions ``logprobs`` -> the sample's :class:`~app.domain.TokenTrace`.

The remote engine asks for ``"logprobs": 5``; vLLM, SGLang and llama.cpp's server then send, in every streamed
chunk, ``choices[0].logprobs`` = ``{"tokens": [...], "token_logprobs": [...], "top_logprobs": [{text: logprob}]}``.
:func:`parse_logprobs` reads that; :class:`TokenLog` collects one sample's tokens across its chain of requests,
in order, with the text the client appends itself (close tag, answer cue, "Wait") as *forced* tokens (counted
with the local tokenizer, no probability, like forced tokens locally).

What the numbers are: ``prob`` is ``exp(logprob)`` of the token the server chose; the top alternatives are the
server's top 5 with their probabilities; the entropy is a **top-k estimate**: the entropy of those top 5
renormalised to sum to one (the server does not send the whole distribution), so it is a lower bound on the
spread and reads 0 where the top token holds nearly all the mass. Which distribution the server measured
(before or after temperature) is the server's choice: vLLM reports the model's own, before sampling settings.

A server that sends no ``logprobs`` (transformers serve ignores the field) leaves the trace empty with
:data:`~app.domain.SERVER_NO_TOKEN_DATA` as its source, so the run JSON and the lens say the server has none.
Knows nothing about HTTP, budgets or storage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from app.domain import SERVER_NO_TOKEN_DATA, TOP_ALTERNATIVES, TokenTrace
from app.engine.pieces import token_pieces

#: ``token_source`` of a trace built from server logprobs.
SOURCE_SERVER = f"server logprobs (top {TOP_ALTERNATIVES}; entropy estimated over the top {TOP_ALTERNATIVES})"


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token as the server reported it: its text, log-probability and top alternatives."""

    text: str
    logprob: float | None
    top: tuple[tuple[str, float], ...] = ()


def parse_logprobs(choice: dict[str, Any]) -> list[TokenLogprob] | None:
    """The tokens of one streamed ``choices[0]``, or None when it carries no ``logprobs`` (or a shape we can't read)."""
    data = choice.get("logprobs")
    if not isinstance(data, dict):
        return None
    tokens, logprobs = data.get("tokens"), data.get("token_logprobs")
    if not isinstance(tokens, list) or not isinstance(logprobs, list) or len(tokens) != len(logprobs):
        return None
    tops = data.get("top_logprobs")
    if not isinstance(tops, list) or len(tops) != len(tokens):
        tops = [None] * len(tokens)
    out = []
    for text, lp, top in zip(tokens, logprobs, tops, strict=True):
        alternatives = ()
        if isinstance(top, dict):
            pairs = [(str(t), float(v)) for t, v in top.items() if isinstance(v, int | float) and math.isfinite(v)]
            alternatives = tuple(sorted(pairs, key=lambda p: -p[1])[:TOP_ALTERNATIVES])
        value = float(lp) if isinstance(lp, int | float) and math.isfinite(lp) else None
        out.append(TokenLogprob(str(text), value, alternatives))
    return out


def top_k_entropy(top: tuple[tuple[str, float], ...]) -> float | None:
    """Entropy (nats) of the top alternatives renormalised to sum to one: the top-k estimate (module docstring)."""
    if not top:
        return None
    probs = [math.exp(lp) for _, lp in top]
    total = sum(probs)
    if total <= 0:
        return None
    return max(0.0, -sum(p / total * math.log(p / total) for p in probs if p > 0))


@dataclass
class _Token:
    text: str
    label: str  # t / c / a, upper case when forced
    prob: float | None = None
    entropy: float | None = None
    top: tuple[tuple[str, float], ...] = ()


@dataclass
class TokenLog:
    """One sample's tokens across its requests. ``missing`` once any generated text came without logprobs."""

    tokenizer: Any
    tokens: list[_Token] = field(default_factory=list)
    pending: list[TokenLogprob] = field(default_factory=list)
    missing: bool = False
    seen: bool = False

    def add(self, chunk_text: str, logprobs: list[TokenLogprob] | None) -> None:
        """Record a streamed chunk's tokens (kept pending until :meth:`keep` knows how much text was kept)."""
        if logprobs is None:
            if chunk_text:
                self.missing = True
            return
        self.seen = True
        self.pending.extend(logprobs)

    def keep(self, text: str, label: str) -> None:
        """The request ended and ``text`` of what it streamed was kept: commit the tokens that make it up.

        A token that runs past the kept text (the close tag cut out of it) is dropped; any kept text the
        tokens don't cover is added as forced, so the pieces always join to the sample's text.
        """
        used = 0
        for tok in self.pending:
            if used + len(tok.text) > len(text) or (not tok.text and used >= len(text)):
                break
            entropy = top_k_entropy(tok.top or ((tok.text, tok.logprob),) if tok.logprob is not None else ())
            if tok.logprob is None:
                self.tokens.append(_Token(tok.text, label.upper()))
            else:
                self.tokens.append(_Token(tok.text, label, math.exp(tok.logprob), entropy, tok.top))
            used += len(tok.text)
        self.pending = []
        if used < len(text) and self.seen:
            self.forced(text[used:], label)

    def forced(self, text: str, label: str) -> None:
        """Text the client appended (close tag, cue, "Wait"): its tokens under the local tokenizer, forced."""
        if not text:
            return
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        for piece in token_pieces(self.tokenizer, ids) if ids else [text]:
            self.tokens.append(_Token(piece, label.upper()))

    def trace(self) -> TokenTrace:
        """The sample's :class:`TokenTrace`; empty with source :data:`SERVER_NO_TOKEN_DATA` when the server sent none."""
        if self.missing or not self.seen:
            return TokenTrace.empty(SERVER_NO_TOKEN_DATA)
        ids: dict[str, int] = {}

        def token_id(text: str) -> int:
            if text not in ids:
                encoded = self.tokenizer.encode(text, add_special_tokens=False) if text else []
                # The server names tokens by text; an id the local tokenizer agrees on, else one past its vocab.
                ids[text] = encoded[0] if len(encoded) == 1 else len(self.tokenizer) + len(ids)
            return ids[text]

        top_ids = [[token_id(t) for t, _ in tok.top] for tok in self.tokens]
        trace = TokenTrace(
            token_ids=[token_id(tok.text) for tok in self.tokens],
            labels="".join(tok.label for tok in self.tokens),
            prob=[_round(tok.prob) for tok in self.tokens],
            entropy=[_round(tok.entropy) for tok in self.tokens],
            top_ids=top_ids,
            top_probs=[[round(math.exp(lp), 5) for _, lp in tok.top] for tok in self.tokens],
            source=SOURCE_SERVER,
            pieces=[tok.text for tok in self.tokens],
        )
        trace.vocab = {i: text for text, i in ids.items()}
        return trace


def _round(x: float | None) -> float | None:
    return round(x, 5) if x is not None and math.isfinite(x) else None
