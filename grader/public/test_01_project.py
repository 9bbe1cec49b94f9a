"""Public tests for exercise 01 (shapes and a few equivalence checks). The full grade runs the
course's hidden tests, in GitHub Classroom or Gradescope."""
import torch
import torch.nn.functional as F

from grader.checks import close, graded, randn, rules_respected, shaped
from grader.guards import LINEAR_LAYER

FORBIDDEN = LINEAR_LAYER
F64 = torch.float64


@graded("shapes", 1)
def test_linear_keeps_leading_axes(ex, rng):
    """linear maps (2, 3, 8) to (2, 3, 5) and keeps float32"""
    x, w, b = randn(rng, 2, 3, 8), randn(rng, 5, 8), randn(rng, 5)
    shaped(ex.linear(x, w, b), (2, 3, 5), torch.float32, ex)


@graded("equivalence", 2)
def test_project_qkv_matches_f_linear(ex, rng):
    """project_qkv matches F.linear: q from x, k and v from the context"""
    x, ctx = randn(rng, 2, 3, 8, dtype=F64), randn(rng, 2, 5, 8, dtype=F64)
    ws = [randn(rng, 8, 8, dtype=F64) for _ in range(3)]
    q, k, v = ex.project_qkv(x, *ws, context=ctx)
    close(q, F.linear(x, ws[0]), ex, part=0)
    close(k, F.linear(ctx, ws[1]), ex, part=1)
    close(v, F.linear(ctx, ws[2]), ex, part=2)


@graded("rules", 0.5)
def test_no_library_linear(ex, rng):
    """is built without torch.nn.functional.linear or torch.nn.Linear"""
    ex.linear(randn(rng, 2, 3), randn(rng, 4, 3))
    rules_respected(ex)
