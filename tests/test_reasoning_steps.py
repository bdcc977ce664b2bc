"""segment_steps / segment_trace / merge_steps / split_step: offsets, pivots, tiny fragments."""

import pytest

from app.domain import Step
from app.reasoning.steps import merge_steps, segment_steps, segment_trace, split_step


def assert_offsets(steps: list[Step], text: str) -> None:
    for i, step in enumerate(steps):
        assert step.index == i
        assert text[step.start : step.end] == step.text
        assert step.text == step.text.strip() and step.text


THINKING = (
    "First, Janet has 16 eggs per day.\n"
    "She eats 3 and bakes with 4, so 16 - 3 - 4 = 9 eggs remain.\n"
    "\n"
    "She sells them at $2 each, so 9 * 2 = 18. Wait, did I count the muffins? Yes, 4 eggs.\n"
    "Hmm, so the total is 18 dollars.\n"
)


def test_each_line_is_a_step_and_offsets_point_into_the_text():
    steps = segment_steps(THINKING)
    assert_offsets(steps, THINKING)
    assert steps[0].text == "First, Janet has 16 eggs per day."
    assert all(s.source == "thinking" for s in steps)


def test_pivot_word_mid_paragraph_starts_a_new_step():
    texts = [s.text for s in segment_steps(THINKING)]
    assert "She sells them at $2 each, so 9 * 2 = 18." in texts
    assert "Wait, did I count the muffins? Yes, 4 eggs." in texts
    assert texts[-1] == "Hmm, so the total is 18 dollars."


@pytest.mark.parametrize(
    "pivot", ["Wait", "Alternatively", "Hmm", "But wait", "Let me check", "On second thought", "Actually"]
)
def test_every_pivot_word_splits_after_a_sentence_end(pivot):
    text = f"The sum of the two numbers is 12. {pivot}, the second number was 7 not 5 so it is 14."
    steps = segment_steps(text)
    assert [s.text.startswith(pivot) for s in steps] == [False, True]
    assert_offsets(steps, text)


def test_pivot_word_inside_a_sentence_does_not_split():
    text = "I will wait for the train that leaves at noon, actually it is late today."
    assert len(segment_steps(text)) == 1


def test_tiny_fragments_join_the_previous_step():
    text = "Compute 16 - 3 - 4 carefully.\n= 9\n18\n...\nThen multiply by the price of one egg."
    steps = segment_steps(text)
    assert [s.text for s in steps] == [
        "Compute 16 - 3 - 4 carefully.\n= 9\n18\n...",
        "Then multiply by the price of one egg.",
    ]
    assert_offsets(steps, text)


def test_tiny_lead_in_fragments_join_the_next_step():
    text = "We know the price of an egg.\nStep 2:\nMultiply 9 eggs by $2 each.\nWait.\nThat ignores the muffins."
    texts = [s.text for s in segment_steps(text)]
    assert texts == [
        "We know the price of an egg.",
        "Step 2:\nMultiply 9 eggs by $2 each.",
        "Wait.\nThat ignores the muffins.",
    ]


def test_leading_tiny_fragment_joins_the_first_real_step():
    text = "42\nThe answer above is a guess, let me redo it."
    assert [s.text for s in segment_steps(text)] == ["42\nThe answer above is a guess, let me redo it."]


def test_text_of_only_tiny_fragments_is_one_step():
    assert [s.text for s in segment_steps("  18  \n.\n")] == ["18  \n."]


def test_empty_or_blank_text_has_no_steps():
    assert segment_steps("") == []
    assert segment_steps(" \n\n\t") == []


def test_segment_trace_indexes_answer_steps_after_thinking_steps():
    answer = "She makes $18 every day.\n\nFinal Answer: 18"
    steps = segment_trace(THINKING, answer)
    thinking = [s for s in steps if s.source == "thinking"]
    answers = [s for s in steps if s.source == "answer"]
    assert [s.index for s in steps] == list(range(len(steps)))
    assert steps[: len(thinking)] == thinking
    assert [s.text for s in answers] == ["She makes $18 every day.", "Final Answer: 18"]
    assert answer[answers[1].start : answers[1].end] == "Final Answer: 18"


def test_merge_then_split_round_trips():
    steps = segment_steps(THINKING)
    merged = merge_steps(steps, 1, THINKING)
    assert len(merged) == len(steps) - 1
    assert_offsets(merged, THINKING)
    assert merged[1].text == steps[1].text + "\n\n" + steps[2].text
    again = split_step(merged, 1, steps[1].end)
    assert again == steps


def test_split_then_merge_round_trips_without_the_source_text_for_line_steps():
    text = "Line one is long enough.\nLine two is long enough too."
    steps = segment_steps(text, "answer")
    assert merge_steps(steps, 0) == [Step(0, text, 0, len(text), "answer")]
    assert split_step(merge_steps(steps, 0), 0, steps[0].end + 1) == steps


def test_split_step_strips_whitespace_at_the_cut():
    text = "Half of 18 is 9 and twice 9 is 18."
    steps = segment_steps(text)
    at = text.index(" and")
    left, right = split_step(steps, 0, at)
    assert (left.text, right.text) == ("Half of 18 is 9", "and twice 9 is 18.")
    assert_offsets([left, right], text)


@pytest.mark.parametrize("at", [0, 16, 40, -1, 100])  # step 1 spans chars 16..40
def test_split_step_outside_the_step_is_refused(at):
    steps = segment_steps("Intro sentence.\nThe second step is here.")
    with pytest.raises(ValueError, match="outside step 1"):
        split_step(steps, 1, at)


def test_split_step_that_would_leave_an_empty_side_is_refused():
    # segment_steps never makes such a step (its text is stripped); a hand-built one can.
    steps = [Step(0, "First half.   ", 0, 14)]
    with pytest.raises(ValueError, match="empty step"):
        split_step(steps, 0, 12)


def test_merge_last_step_and_bad_indexes_are_refused():
    steps = segment_steps(THINKING)
    with pytest.raises(ValueError, match="no following step"):
        merge_steps(steps, len(steps) - 1)
    with pytest.raises(ValueError, match="not a step"):
        split_step(steps, len(steps), 3)


def test_merge_across_thinking_and_answer_is_refused():
    steps = segment_trace("Thinking about the problem.", "The answer is 18 dollars.")
    with pytest.raises(ValueError, match="different halves"):
        merge_steps(steps, 0)
