"""Public tests for exercise 08 (shapes and a few equivalence checks). The full grade runs the
course's hidden tests, in GitHub Classroom or Gradescope."""
import torch
import torch.nn.functional as F

from grader.checks import close, graded, randn, rules_respected, shaped
from grader.guards import LINEAR_LAYER

FORBIDDEN = LINEAR_LAYER
F64 = torch.float64


@graded("shapes", 1)
def test_shape(ex, rng):
    """(2, 5, 12) with w_o (7, 12) gives (2, 5, 7)"""
    x, w = randn(rng, 2, 5, 12), randn(rng, 7, 12)
    shaped(ex.output_projection(x, w), (2, 5, 7), torch.float32, ex)


@graded("equivalence", 2)
def test_matches_f_linear(ex, rng):
    """equals F.linear(x, w_o, b_o)"""
    x, w, b = randn(rng, 3, 4, 8, dtype=F64), randn(rng, 8, 8, dtype=F64), randn(rng, 8, dtype=F64)
    close(ex.output_projection(x, w, b), F.linear(x, w, b), ex)


@graded("rules", 0.5)
def test_no_library_linear(ex, rng):
    """is built without torch.nn.functional.linear or torch.nn.Linear"""
    ex.output_projection(randn(rng, 1, 2, 4), randn(rng, 4, 4))
    rules_respected(ex)
