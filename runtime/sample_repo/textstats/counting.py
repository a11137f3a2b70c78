"""Counting words, lines and characters."""

from textstats.cleaning import split_words


def count_words(text):
    """The number of words in `text`."""
    return len(split_words(text))


def count_lines(text):
    """The number of non-empty lines in `text`."""
    return sum(1 for line in text.splitlines() if line.strip())


def count_chars(text, ignore_spaces=False):
    """The number of characters in `text`, without whitespace if `ignore_spaces`."""
    if ignore_spaces:
        return sum(1 for char in text if not char.isspace())
    return len(text)
