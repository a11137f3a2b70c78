import unittest

from textstats import top_words, word_frequencies


class FrequencyTest(unittest.TestCase):
    def test_word_frequencies_are_case_insensitive(self):
        self.assertEqual(word_frequencies("The cat and the hat"), {"the": 2, "cat": 1, "and": 1, "hat": 1})

    def test_top_words_breaks_ties_alphabetically(self):
        self.assertEqual(top_words("b a c a b", n=2), [("a", 2), ("b", 2)])

    def test_top_words_needs_a_positive_n(self):
        with self.assertRaises(ValueError):
            top_words("a", n=0)


if __name__ == "__main__":
    unittest.main()
