"""split_thinking: the four shapes a raw completion comes in."""

import pytest

from app.reasoning.split import split_thinking


def test_open_and_close_tags_split_thinking_from_answer():
    assert split_thinking("<think>\n16 - 3 = 13\n</think>\n\nThe answer is 13.") == ("16 - 3 = 13", "The answer is 13.")


def test_close_tag_without_open_tag_still_splits():
    # Templates that put <think> in the prompt make the model emit only the close tag.
    assert split_thinking("  reasoning here </think> answer ") == ("reasoning here", "answer")


def test_leading_open_tag_after_whitespace_is_dropped():
    assert split_thinking("\n <think>a</think>b") == ("a", "b")


def test_no_close_tag_and_open_tag_means_cut_off_while_thinking():
    assert split_thinking("<think> still going, wait") == ("still going, wait", "")


def test_no_tags_means_all_answer():
    assert split_thinking("  just an answer\n") == ("", "just an answer")


def test_empty_text_gives_two_empty_halves():
    assert split_thinking("") == ("", "")


def test_only_the_first_close_tag_splits():
    assert split_thinking("<think>a</think>b</think>c") == ("a", "b</think>c")


def test_custom_tags():
    assert split_thinking("[T]x[/T] y", open_tag="[T]", close_tag="[/T]") == ("x", "y")


def test_empty_close_tag_is_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match="close_tag"):
        split_thinking("x", close_tag="")
