"""Public tests for exercise 09 (shapes and a few equivalence checks). The full grade runs the
course's hidden tests, in GitHub Classroom or Gradescope."""
import torch
import torch.nn.functional as F

from grader.checks import close, graded, randn, rules_respected, shaped

F64 = torch.float64


def expected(q, k, v, mask=None):
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else ~mask)
    probs = F.scaled_dot_product_attention(q, k, torch.eye(k.shape[-2], dtype=q.dtype).expand(*k.shape[:-1], -1),
                                           attn_mask=None if mask is None else ~mask)
    return out, probs


@graded("shapes", 1)
def test_shapes(ex, rng):
    """out (2, 3, 5, 6) and probs (2, 3, 5, 7) for q (2, 3, 5, 4), k (2, 3, 7, 4), v (2, 3, 7, 6)"""
    q, k, v = randn(rng, 2, 3, 5, 4), randn(rng, 2, 3, 7, 4), randn(rng, 2, 3, 7, 6)
    out, probs = ex.scaled_dot_product_attention(q, k, v)
    shaped(out, (2, 3, 5, 6), torch.float32, ex, what="out", part=0)
    shaped(probs, (2, 3, 5, 7), torch.float32, ex, what="probs", part=1)


@graded("equivalence", 2)
def test_matches_pytorch_with_a_mask(ex, rng):
    """with a boolean mask (ours: True = blocked), matches F.scaled_dot_product_attention given its inverse"""
    q, k, v = randn(rng, 2, 4, 6, dtype=F64), randn(rng, 2, 5, 6, dtype=F64), randn(rng, 2, 5, 3, dtype=F64)
    mask = torch.ones(4, 5, dtype=torch.bool).triu(2)
    out, probs = ex.scaled_dot_product_attention(q, k, v, mask=mask)
    want = expected(q, k, v, mask)
    close(out, want[0], ex, part=0)
    close(probs, want[1], ex, part=1)


@graded("rules", 0.5)
def test_rules(ex, rng):
    """uses no fused attention"""
    ex.scaled_dot_product_attention(randn(rng, 1, 2, 4), randn(rng, 1, 3, 4), randn(rng, 1, 3, 4))
    rules_respected(ex)
