"""Public tests for exercise 03 (shapes and a few equivalence checks). The full grade runs the
course's hidden tests, in GitHub Classroom or Gradescope."""
import torch

from grader.checks import close, graded, randn, rules_respected, shaped

F64 = torch.float64


@graded("shapes", 1)
def test_shape(ex, rng):
    """q (2, 3, 5, 16) and k (2, 3, 7, 16) give scores (2, 3, 5, 7)"""
    q, k = randn(rng, 2, 3, 5, 16), randn(rng, 2, 3, 7, 16)
    shaped(ex.attention_scores(q, k), (2, 3, 5, 7), torch.float32, ex)


@graded("equivalence", 2)
def test_matches_baddbmm_with_a_scale(ex, rng):
    """equals torch.baddbmm(0, q, kᵀ, alpha=scale) for a given scale"""
    q, k = randn(rng, 4, 6, 8, dtype=F64), randn(rng, 4, 9, 8, dtype=F64)
    expected = torch.baddbmm(torch.zeros(4, 6, 9, dtype=F64), q, k.mT, alpha=0.3)
    close(ex.attention_scores(q, k, scale=0.3), expected, ex)


@graded("rules", 0.5)
def test_rules(ex, rng):
    """uses no fused attention"""
    ex.attention_scores(randn(rng, 1, 2, 4), randn(rng, 1, 3, 4))
    rules_respected(ex)
