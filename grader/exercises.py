"""The exercises are whatever hidden test modules exist: grader/tests/test_NN_name.py.

Adding an exercise means adding files (the stub, the reference, this test module), never
editing a list. `Exercise` is the one record of an exercise: every path of its files is derived
from its id and name here, and `select()` is the one lookup (the CLI, the study tools, batch).
"""
import re
from dataclasses import dataclass
from pathlib import Path

GRADER_DIR = Path(__file__).resolve().parent
REPO = GRADER_DIR.parent
TESTS_DIR = GRADER_DIR / "tests"
PUBLIC_DIR = GRADER_DIR / "public"
EXERCISES_DIR = REPO / "exercises"
SOLUTIONS_DIR = REPO / "solutions"
HINTS_DIR = EXERCISES_DIR / "hints"
POINTS_PER_EXERCISE = 10.0
CATEGORIES = ("shapes", "masking", "fp16", "equivalence", "edge", "rules")


@dataclass(frozen=True)
class Exercise:
    id: str            # "05"
    name: str          # "softmax"
    test_module: Path  # grader/tests/test_05_softmax.py

    @classmethod
    def named(cls, id, name):
        return cls(id, name, TESTS_DIR / f"test_{id}_{name}.py")

    @property
    def filename(self):
        return f"{self.id}_{self.name}.py"

    @property
    def stem(self):
        return f"{self.id}_{self.name}"

    @property
    def label(self):
        return f"{self.id} {self.name}"

    @property
    def graded(self):
        """Whether its hidden tests exist (a stub may come before them)."""
        return self.test_module.is_file()

    @property
    def stub(self):
        return EXERCISES_DIR / self.filename

    @property
    def solution(self):
        return SOLUTIONS_DIR / self.filename

    @property
    def reading(self):
        return EXERCISES_DIR / f"{self.stem}.md"

    @property
    def hints(self):
        return HINTS_DIR / f"{self.stem}.md"

    @property
    def public_tests(self):
        return PUBLIC_DIR / f"test_{self.stem}.py"

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
    """Every exercise with hidden tests, in order."""
    found = []
    for path in sorted(TESTS_DIR.glob("test_[0-9][0-9]_*.py")):
        m = re.fullmatch(r"test_(\d\d)_(\w+)\.py", path.name)
        if m:
            found.append(Exercise(m.group(1), m.group(2), path))
    return found


def with_stubs():
    """The graded exercises, plus any stub in exercises/ whose hidden tests are not written yet."""
    found = {e.id: e for e in all_exercises()}
    for path in sorted(EXERCISES_DIR.glob("[0-9][0-9]_*.py")):
        m = re.fullmatch(r"(\d\d)_(\w+)\.py", path.name)
        if m and m.group(1) not in found:
            found[m.group(1)] = Exercise.named(m.group(1), m.group(2))
    return [found[k] for k in sorted(found)]


class UnknownExercise(ValueError):
    pass


def find(word, known=None):
    """The exercise a learner means by `word`: "5", "05", "softmax", "05_softmax", a file name or path."""
    known = all_exercises() if known is None else known
    key = word.strip().removeprefix("./").removeprefix("exercises/").removesuffix(".py")
    key = key.zfill(2) if key.isdigit() else key
    for ex in known:
        if key in (ex.id, ex.name, ex.stem):
            return ex
    raise UnknownExercise(f"unknown exercise {word!r}: choose from {', '.join(e.id for e in known) or 'none found'}")


def select(words, known=None):
    """The exercises named (each once, in the order given), or every one when none is named."""
    known = all_exercises() if known is None else known
    chosen = []
    for word in words:
        ex = find(word, known)
        if ex not in chosen:
            chosen.append(ex)
    return chosen or list(known)
