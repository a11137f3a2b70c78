import unittest

from textstats import count_chars, count_lines, count_words


class CountingTest(unittest.TestCase):
    def test_count_words_splits_on_punctuation(self):
        self.assertEqual(count_words("Hello, world! It's fine."), 4)

    def test_count_words_of_empty_text_is_zero(self):
        self.assertEqual(count_words(""), 0)

    def test_count_lines_skips_blank_lines(self):
        self.assertEqual(count_lines("one\n\n  \ntwo\n"), 2)

    def test_count_chars_can_ignore_spaces(self):
        self.assertEqual(count_chars("a b\tc"), 5)
        self.assertEqual(count_chars("a b\tc", ignore_spaces=True), 3)


if __name__ == "__main__":
    unittest.main()
