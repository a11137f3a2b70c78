"""What a re-execution masks before comparing tool results: what differs run to run only."""

from __future__ import annotations

import pytest

from runtime.replay import REPLAY_MASKS


def masked(text: str) -> str:
    for pattern, replacement in REPLAY_MASKS:
        text = pattern.sub(replacement, text)
    return text


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # `git commit` in two runs: the hashes differ, and one in 27 is all digits.
        ("[main 1234567] Rename count_words", "[main 0a1b2c3] Rename count_words"),
        ("[main (root-commit) 7654321] first", "[main (root-commit) fe12a09] first"),
        ("1234567 Rename count_words\n89abcde first", "f00ba47 Rename count_words\n7777777 first"),
        # `git log -1 --format=%h` after a commit (the shipper's), a hash alone on its line.
        ("exit code 0 (0.07s)\n048f4e6", "exit code 0 (0.05s)\n4861250"),
        ("exit code 0 (0.07s)\n048f4e6\n", "exit code 0 (0.05s)\ndeadbee\n"),
        ("Ran 9 tests in 0.012s", "Ran 9 tests in 0.034s"),
    ],
)
def test_what_differs_between_runs_only_is_masked(first: str, second: str) -> None:
    assert masked(first) == masked(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("count 1234567 words", "count 7654321 words"),  # a number in prose is content
        ("[main 1234567] Rename count_words", "[main 1234567] Rename word_count"),
        ("decade", "facade"),
    ],
)
def test_content_is_not_masked(first: str, second: str) -> None:
    assert masked(first) != masked(second)
