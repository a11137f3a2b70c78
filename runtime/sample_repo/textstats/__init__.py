"""textstats: small text statistics with the standard library only."""

from textstats.cleaning import normalize_text, split_words
from textstats.counting import count_chars, count_lines, count_words
from textstats.frequency import top_words, word_frequencies
from textstats.report import summary_report

__all__ = [
    "count_chars",
    "count_lines",
    "count_words",
    "normalize_text",
    "split_words",
    "summary_report",
    "top_words",
    "word_frequencies",
]
