"""The lens HTML builder and the Self-consistency card summary (pure: no model, no browser)."""

from __future__ import annotations

from app.domain import GenerationResult, GenerationSettings, SampleResult, TokenTrace
from app.services.consistency import build_report
from app.ui.lens import NO_TOKEN_DATA, lens_html

PAYLOAD = '<img src=x onerror="alert(1)">'


def _sample(tokens: TokenTrace | None) -> SampleResult:
    return SampleResult(0, "".join(tokens.pieces) if tokens else "x", "Wait 4", "4", 2, 1, "end", tokens=tokens,
                        extracted_answer="4")  # fmt: skip


def _tokens() -> TokenTrace:
    return TokenTrace([1, 2, 3], "tTa", [0.5, None, 0.9], [2.0, None, 0.1], [[7], [], [8]], [[0.5], [], [0.9]],
                      "s", [PAYLOAD, "Wait", " 4"], {7: '"><b>', 8: "4"})  # fmt: skip


def test_lens_escapes_every_token_and_alternative_and_says_when_there_is_no_data():
    run = {"samples": [_sample(_tokens()).to_dict(), _sample(None).to_dict()]}
    out = lens_html(run, True, 0.2)
    assert PAYLOAD not in out and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in out
    assert '"><b>' not in out and "&quot;&gt;&lt;b&gt;" in out  # an alternative's text inside title=""
    assert out.count("data-index=") == 3 and "tl-forced" in out and NO_TOKEN_DATA in out
    assert lens_html(run, False) == "" and lens_html(None) == "" and lens_html({"samples": []}) == ""


def test_cards_carry_mean_entropy_forking_tokens_and_pivots():
    result = GenerationResult("m", "prompted", GenerationSettings(samples=2), [_sample(_tokens()), _sample(None)], "q")
    with_tokens, without = build_report(result, 1, "4").samples
    assert with_tokens.mean_entropy == 1.05 and with_tokens.forking_tokens == 0 and with_tokens.pivots == 0
    assert without.mean_entropy is None and without.forking_tokens is None and without.pivots == 1  # from the text
