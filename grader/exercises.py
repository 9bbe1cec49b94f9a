"""The exercises are whatever hidden test modules exist: grader/tests/test_NN_name.py.

Adding an exercise means adding files (the stub, the reference, this test module), never
editing a list.
"""
import re
from dataclasses import dataclass
from pathlib import Path

GRADER_DIR = Path(__file__).resolve().parent
REPO = GRADER_DIR.parent
TESTS_DIR = GRADER_DIR / "tests"
POINTS_PER_EXERCISE = 10.0
CATEGORIES = ("shapes", "masking", "fp16", "equivalence", "edge", "rules")


@dataclass(frozen=True)
class Exercise:
    id: str            # "05"
    name: str          # "softmax"
    test_module: Path  # grader/tests/test_05_softmax.py

    @property
    def filename(self):
        return f"{self.id}_{self.name}.py"


def all_exercises():
    found = []
    for path in sorted(TESTS_DIR.glob("test_[0-9][0-9]_*.py")):
        m = re.fullmatch(r"test_(\d\d)_(\w+)\.py", path.name)
        if m:
            found.append(Exercise(m.group(1), m.group(2), path))
    return found
