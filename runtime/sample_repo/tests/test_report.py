import unittest

from textstats import summary_report


class ReportTest(unittest.TestCase):
    def test_summary_report_lists_counts_and_top_words(self):
        report = summary_report("the cat\nthe hat\n", n=2)
        self.assertIn("Words: 4", report)
        self.assertIn("Lines: 2", report)
        self.assertIn("Top words: the (2), cat (1)", report)

    def test_summary_report_starts_with_its_title(self):
        self.assertTrue(summary_report("x").startswith("Text statistics report"))


if __name__ == "__main__":
    unittest.main()
