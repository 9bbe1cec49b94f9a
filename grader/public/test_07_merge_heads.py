"""Public tests for exercise 07 (shapes and a few equivalence checks). The full grade runs the
course's hidden tests, in GitHub Classroom or Gradescope."""
import torch

from grader.checks import close, graded, randn, rules_respected, shaped

F64 = torch.float64


@graded("shapes", 1)
def test_shape(ex, rng):
    """(2, 3, 5, 4) becomes (2, 5, 12)"""
    x = randn(rng, 2, 3, 5, 4)
    shaped(ex.merge_heads(x), (2, 5, 12), torch.float32, ex)


@graded("equivalence", 2)
def test_heads_side_by_side(ex, rng):
    """head h lands in features [h·d_head, (h+1)·d_head): torch.cat(x.unbind(1), -1)"""
    x = randn(rng, 3, 4, 6, 2, dtype=F64)
    close(ex.merge_heads(x), torch.cat(x.unbind(1), dim=-1), ex)


@graded("rules", 0.5)
def test_rules(ex, rng):
    """uses no fused attention"""
    ex.merge_heads(randn(rng, 1, 2, 3, 2))
    rules_respected(ex)
