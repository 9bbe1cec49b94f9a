"""The text and JSON reports of a fixed grade of representative submissions are exactly the
golden ones in tests/golden/ (tests/golden_reports.py says which submissions and what is normalised)."""
import difflib

import pytest

from golden_reports import CASES, GOLDEN, README, produce, readme_with_example

REGENERATE = "make golden  (python tests/golden_reports.py), then review: git diff tests/golden"


@pytest.fixture(scope="module")
def produced():
    return produce()


@pytest.mark.parametrize("name", ["report.txt", "report.json"])
def test_report_is_the_golden_one(produced, name):
    golden = GOLDEN / name
    assert golden.is_file(), f"no {golden}: write it with {REGENERATE}"
    want, got = golden.read_text(), produced[name]
    if got != want:
        diff = list(difflib.unified_diff(want.splitlines(), got.splitlines(), f"golden/{name}", "this run",
                                         lineterm="", n=1))
        shown = "\n".join(diff[:80]) + (f"\n[... {len(diff) - 80} more diff lines]" if len(diff) > 80 else "")
        pytest.fail(f"the {name} of the golden grade changed. If the change is intended: {REGENERATE}\n{shown}",
                    pytrace=False)


def test_the_cases_span_every_kind_of_report(produced):
    """The golden grade keeps showing each kind of result it was chosen for."""
    text = produced["report.txt"]
    for words in ("complete", "not started", "This looks like a known mistake", "holds NaN",
                  "your code ended the process", "your code raised", "forbidden helper: 0", "does not load",
                  "not attempted"):
        assert words in text, f"no case of the golden grade shows {words!r} any more: {sorted(CASES)}"


def test_readme_example_is_real_output(produced):
    """The README's example report is 03's part of the golden grade, as make golden writes it."""
    text = README.read_text()
    assert readme_with_example(produced["report.txt"], text) == text, \
        f"the README's example report is not the golden grade's: {REGENERATE}"
