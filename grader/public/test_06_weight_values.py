"""Public tests for exercise 06 (shapes and a few equivalence checks). The full grade runs the
course's hidden tests, in GitHub Classroom or Gradescope."""
import torch

from grader.checks import close, graded, randn, rules_respected, shaped

F64 = torch.float64


@graded("shapes", 1)
def test_shape(ex, rng):
    """probs (2, 3, 5, 7) and v (2, 3, 7, 4) give (2, 3, 5, 4)"""
    p, v = torch.rand(2, 3, 5, 7, generator=rng), randn(rng, 2, 3, 7, 4)
    shaped(ex.weight_values(p, v), (2, 3, 5, 4), torch.float32, ex)


@graded("equivalence", 2)
def test_matches_einsum(ex, rng):
    """equals torch.einsum('...ls,...sd->...ld', probs, v)"""
    p, v = torch.rand(4, 6, 9, generator=rng, dtype=F64), randn(rng, 4, 9, 3, dtype=F64)
    close(ex.weight_values(p, v), torch.einsum("...ls,...sd->...ld", p, v), ex)


@graded("rules", 0.5)
def test_rules(ex, rng):
    """uses no fused attention"""
    ex.weight_values(torch.rand(1, 2, 3, generator=rng), randn(rng, 1, 3, 2))
    rules_respected(ex)
