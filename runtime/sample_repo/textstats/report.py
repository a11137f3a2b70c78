"""A short plain-text report."""

from textstats.counting import count_lines, count_words
from textstats.frequency import top_words

TITLE = "Text statistics report"


def summary_report(text, n=3):
    """A few lines of plain text: the title, word and line counts and the top `n` words."""
    lines = [
        TITLE,
        "=" * len(TITLE),
        f"Words: {count_words(text)}",
        f"Lines: {count_lines(text)}",
        "Top words: " + ", ".join(f"{word} ({count})" for word, count in top_words(text, n)),
    ]
    return "\n".join(lines)
