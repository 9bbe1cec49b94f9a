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

    @property
    def cost(self):
        """How long its tests take, relative to a typical exercise's (its test module's `COST = N`,
        else 1): grading workers share the exercises by it, the longest first."""
        m = re.search(r"^COST\s*=\s*([0-9.]+)", self.test_module.read_text(errors="replace"), re.M)
        return float(m.group(1)) if m else 1.0


def share(exercises, workers):
    """Exercises split among workers so that each gets about the same cost (longest first)."""
    loads = [[0.0, []] for _ in range(workers)]
    for ex in sorted(exercises, key=lambda e: -e.cost):
        lightest = min(loads, key=lambda load: load[0])
        lightest[0] += ex.cost
        lightest[1].append(ex)
    return [sorted(mine, key=lambda e: e.id) for _, mine in loads]


def all_exercises():
    found = []
    for path in sorted(TESTS_DIR.glob("test_[0-9][0-9]_*.py")):
        m = re.fullmatch(r"test_(\d\d)_(\w+)\.py", path.name)
        if m:
            found.append(Exercise(m.group(1), m.group(2), path))
    return found
