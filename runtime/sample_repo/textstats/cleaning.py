"""Turning raw text into words."""

import re

_WORD = re.compile(r"[a-z0-9']+")


def normalize_text(text):
    """Lower-case `text` and turn typographic apostrophes into plain ones."""
    return text.lower().replace("\u2019", "'")


def split_words(text):
    """The words of `text`: runs of letters, digits and apostrophes, lower-cased."""
    words = _WORD.findall(normalize_text(text))
    return [word.strip("'") for word in words if word.strip("'")]
