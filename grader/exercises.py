"""The exercises are whatever hidden test modules exist: grader/tests/test_NN_name.py.

Adding an exercise means adding files (`python -m grader.course new NN name` writes them), never
editing a list. `Exercise` is the one record of an exercise: every path of its files is derived
from its id and name here, its metadata (title, what it forbids) is read from its test module,
and `select()` is the one lookup (the CLI, the study tools, batch). Imports no torch.
"""
import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path

from . import forbidden as rules

GRADER_DIR = Path(__file__).resolve().parent
REPO = GRADER_DIR.parent
TESTS_DIR = GRADER_DIR / "tests"
PUBLIC_DIR = GRADER_DIR / "public"
EXERCISES_DIR = REPO / "exercises"
SOLUTIONS_DIR = REPO / "solutions"
HINTS_DIR = EXERCISES_DIR / "hints"
POINTS_PER_EXERCISE = 10.0
CATEGORIES = ("shapes", "masking", "fp16", "equivalence", "edge", "work", "rules")


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
    def title(self):
        """What the learner reads: the test module's `TITLE = "..."` (else the name, spaced)."""
        return read_metadata(self.test_module).get("TITLE") or self.name.replace("_", " ")

    @property
    def forbidden(self):
        """What the stub's "Forbidden in this file:" paragraphs say, one sentence each, derived from
        the test module's FORBIDDEN and FORBIDDEN_IMPORTS (grader/forbidden.py words them)."""
        meta = read_metadata(self.test_module)
        parts = list(meta.get("FORBIDDEN", ())) + list(meta.get("FORBIDDEN_IMPORTS", ()))
        said = [rules.describe(part) for part in parts]
        if "FORBIDDEN_IMPORTS" not in meta:
            said.append(rules.NO_NUMPY)
        return tuple(said)

    @property
    def points(self):
        return POINTS_PER_EXERCISE


class BadMetadata(ValueError):
    pass


@functools.cache
def _metadata(path, mtime):
    tree = ast.parse(path.read_text(), filename=str(path))
    meta = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name == "TITLE":
                meta[name] = _literal(node.value, path, name, str)
            elif name in ("FORBIDDEN", "FORBIDDEN_IMPORTS"):
                meta[name] = _rule_parts(node.value, path, name)
            elif name == "COST":
                meta[name] = float(_literal(node.value, path, name, (int, float)))
            elif name == "CHECKS_DEVICES":
                meta[name] = _literal(node.value, path, name, bool)
    return meta


def checks_devices(exercises):
    """Whether any of these exercises' tests call the code on the meta device (CHECKS_DEVICES)."""
    return any(read_metadata(ex.test_module).get("CHECKS_DEVICES", False) for ex in exercises)


def read_metadata(path):
    """{"TITLE": str, "FORBIDDEN": parts, "FORBIDDEN_IMPORTS": parts, "COST": float} from a test module's source,
    without importing it (so without torch). A part is a family's name (grader/forbidden.py) or
    ("names" | "imports", literal tuple); absent keys were not written."""
    path = Path(path)
    return _metadata(path, path.stat().st_mtime_ns) if path.is_file() else {}


def _literal(node, path, name, kind):
    try:
        value = ast.literal_eval(node)
    except ValueError:
        value = None
    if not isinstance(value, kind):
        kinds = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise BadMetadata(f"{path.name}: {name} must be a literal {kinds}, not `{ast.unparse(node)}`")
    return value


def _rule_parts(node, path, name):
    """FORBIDDEN = FAMILY, a literal tuple, or several joined with +."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _rule_parts(node.left, path, name) + _rule_parts(node.right, path, name)
    if isinstance(node, ast.Name):
        if node.id not in rules.FAMILIES:
            raise BadMetadata(f"{path.name}: {name} names `{node.id}`, which grader/forbidden.py does not describe "
                              f"(known families: {', '.join(rules.FAMILIES)})")
        return (node.id,)
    names = _literal(node, path, name, tuple)
    return (("names" if name == "FORBIDDEN" else "imports", names),) if names else ()


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
