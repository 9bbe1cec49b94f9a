"""Public tests for exercise 11 (shapes and a few equivalence checks). The full grade runs the
course's hidden tests, in GitHub Classroom or Gradescope."""
import torch
import torch.nn.functional as F

from grader.checks import close, graded, randn, rules_respected

F64 = torch.float64


@graded("shapes", 1)
def test_repeat_kv(ex, rng):
    """repeat_kv (2, 2, 5, 4) by 3 gives (2, 6, 5, 4): query head h reads kv head h // 3"""
    x = randn(rng, 2, 2, 5, 4, dtype=F64)
    close(ex.repeat_kv(x, 3), x.repeat_interleave(3, dim=1), ex)


@graded("equivalence", 2)
def test_matches_pytorch_gqa(ex, rng):
    """matches F.scaled_dot_product_attention(..., enable_gqa=True)"""
    q, k, v = randn(rng, 2, 6, 4, 8, dtype=F64), randn(rng, 2, 2, 5, 8, dtype=F64), randn(rng, 2, 2, 5, 3, dtype=F64)
    close(ex.grouped_query_attention(q, k, v), F.scaled_dot_product_attention(q, k, v, enable_gqa=True), ex)


@graded("rules", 0.5)
def test_rules(ex, rng):
    """uses no fused attention"""
    ex.repeat_kv(randn(rng, 1, 1, 2, 2), 2)
    rules_respected(ex)
