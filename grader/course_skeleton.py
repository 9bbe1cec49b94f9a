"""The files of a new exercise, as `python -m grader.course new NN name` writes them.

Each file is a working start, with TODOs where the author writes the content: the stub and the
reference share one signature, the hidden test module says TITLE and holds one sample test, the
hints have their three levels and a `## when:` for that test. Nothing existing is overwritten.
"""
import re

from .exercises import Exercise, with_stubs


class Refused(ValueError):
    pass


NEXT_STEPS = """Next (grader/AUTHORING.md, "Adding an exercise"):
  1. write the reference, the stub's docstrings, the hidden and public tests, the reading, the hints
  2. python -m grader.course sync     README table, Classroom workflow, the stub's rules
  3. python -m grader.course check    until it passes (it asks for mutants and an alternative)"""

STUB = '''"""Exercise {id}: {title}.

TODO: the idea in a paragraph: what the learner builds, and why it is built this way.
"""
import torch


def {name}(x):
    """TODO: one line saying what it returns.

    Args:
        x: TODO: its shape, e.g. (B, L, D).

    Returns:
        TODO: the shape and dtype of the result.

    Steps (shapes for x (B, L, D)):
        out     (B, L, D)    TODO: one line per step, with the helper to use (`torch.something`)
        return out
    """
    raise NotImplementedError("TODO: a one-line nudge toward the first step")
'''

SOLUTION = '''"""Exercise {id}: {title} (reference)."""
import torch


def {name}(x):
    raise NotImplementedError("TODO: the reference solution")
'''

HIDDEN_TESTS = '''"""Hidden tests for exercise {id}: {title}."""
import torch

from grader.checks import Mistake, close, graded, randn, rules_respected

TITLE = "{title}"   # what the learner reads (README table: python -m grader.course sync)
# FORBIDDEN = SOFTMAX_FAMILY          a family from grader/forbidden.py (from grader.guards import ...)
STEP = "TODO: the checklist step, e.g. 5. Stable softmax over the key axis"


def oracle(x):
    """The right answer, in float64, from PyTorch's own functions (never a copy of the reference)."""
    raise NotImplementedError("TODO: the oracle")


MISTAKES = [
    # Mistake("{name}", "what the mistake is", STEP, "how to fix it", lambda x: wrong_result, key="a_key"),
]


@graded("equivalence", 2)
def test_matches_the_oracle(ex, rng):
    """matches the oracle on random inputs"""
    x = randn(rng, 2, 3, 4, dtype=torch.float64)
    close(ex.{name}(x), oracle(x), ex)


@graded("rules", 0.5)
def test_no_forbidden_helper(ex, rng):
    """is built without a forbidden helper"""
    ex.{name}(randn(rng, 2, 3, 4))
    rules_respected(ex)
'''

PUBLIC_TESTS = '''"""Public tests for exercise {id} (shapes and a few equivalence checks). The full grade runs the
course's hidden tests, in GitHub Classroom or Gradescope."""
import torch

from grader.checks import close, graded, randn, rules_respected


@graded("equivalence", 2)
def test_matches_the_oracle(ex, rng):
    """matches the oracle on random inputs"""
    x = randn(rng, 2, 3, 4, dtype=torch.float64)
    close(ex.{name}(x), x, ex)   # TODO: the right answer, from PyTorch's own functions


@graded("rules", 0.5)
def test_rules(ex, rng):
    """uses no forbidden helper"""
    ex.{name}(randn(rng, 2, 3, 4))
    rules_respected(ex)
'''

READING = '''# {id} · {title}

## The idea
TODO: what it computes and why, in a few sentences.

## Shapes
```
x      (B, L, D)
out    (B, L, D)    TODO: one line per step
```

## Complexity
TODO: time and memory, in B, L, D.

## Say it out loud
- "TODO: what a candidate says while writing it."
'''

HINTS = '''# Hints: {id} {name}

## 1
TODO: a nudge: the idea, without code.

## 2
TODO: the idea with shapes, step by step.

## 3
TODO: near-code.

## when: test_matches_the_oracle
TODO: what to look at when this test fails (name a Mistake's key instead, once there are some).
'''


def write(id, name):
    """Writes the new exercise's files; returns their paths. Refuses before writing anything if the
    number or name is malformed or taken, or if any of the files exists."""
    if not re.fullmatch(r"\d{1,2}", id):
        raise Refused(f"the exercise number must be one or two digits, not {id!r}")
    id = id.zfill(2)
    if not re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", name):
        raise Refused(f"the name must be lowercase words joined by single underscores "
                      f"(a Python identifier, e.g. kv_cache), not {name!r}")
    for ex in with_stubs():
        if ex.id == id or ex.name == name:
            raise Refused(f"exercise {ex.label} exists already ({ex.stem}): choose another number and name")
    ex = Exercise.named(id, name)
    filled = dict(id=id, name=name, title=name.replace("_", " "))
    files = {ex.stub: STUB, ex.solution: SOLUTION, ex.test_module: HIDDEN_TESTS, ex.public_tests: PUBLIC_TESTS,
             ex.reading: READING, ex.hints: HINTS}
    taken = [str(p) for p in files if p.exists()]
    if taken:
        raise Refused(f"refusing to overwrite {', '.join(taken)}")
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**filled))
    return list(files)
