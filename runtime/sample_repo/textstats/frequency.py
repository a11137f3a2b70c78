"""Word frequencies."""

from collections import Counter

from textstats.cleaning import split_words


def word_frequencies(text):
    """A dict mapping each word of `text` to the number of times it occurs."""
    return dict(Counter(split_words(text)))


def top_words(text, n=5):
    """The `n` most frequent words of `text` as (word, count) pairs, most frequent first.

    Ties are broken alphabetically so that the result does not depend on word order.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    pairs = sorted(word_frequencies(text).items(), key=lambda item: (-item[1], item[0]))
    return pairs[:n]
