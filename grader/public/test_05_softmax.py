"""Public tests for exercise 05 (shapes and a few equivalence checks). The full grade runs the
course's hidden tests, in GitHub Classroom or Gradescope."""
import torch

from grader.checks import close, graded, randn, rules_respected, shaped
from grader.guards import SOFTMAX_FAMILY

FORBIDDEN = SOFTMAX_FAMILY
F64 = torch.float64


@graded("shapes", 1)
def test_keeps_shape_and_dtype(ex, rng):
    """keeps the input's shape and dtype"""
    for dtype in (torch.float64, torch.float32):
        x = randn(rng, 3, 4, 5, dtype=dtype)
        shaped(ex.softmax(x), x.shape, dtype, ex)


@graded("equivalence", 2)
def test_matches_torch_softmax(ex, rng):
    """matches torch.softmax along the dim it is given"""
    x = randn(rng, 3, 4, 5, dtype=F64, scale=3)
    for dim in (-1, 1):
        close(ex.softmax(x, dim=dim), torch.softmax(x, dim), ex)


@graded("rules", 0.5)
def test_no_library_softmax(ex, rng):
    """is built without a library softmax"""
    ex.softmax(randn(rng, 2, 3))
    rules_respected(ex)
