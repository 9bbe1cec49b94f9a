"""Public tests for exercise 14 (shapes and a few equivalence checks). The full grade runs the
course's hidden tests, in GitHub Classroom or Gradescope."""
import torch
import torch.nn.functional as F

from grader.checks import close, graded, randn, rules_respected, shaped
from grader.guards import SOFTMAX_FAMILY

FORBIDDEN = SOFTMAX_FAMILY
F64 = torch.float64


def lse(q, k, causal=False):
    s = q @ k.mT / q.shape[-1] ** 0.5
    if causal:
        L, S = s.shape[-2:]
        s = s.masked_fill(torch.ones(L, S, dtype=torch.bool).triu(S - L + 1), float("-inf"))
    return torch.logsumexp(s, dim=-1)


@graded("shapes", 1)
def test_shapes(ex, rng):
    """out (1, 2, 9, 3) and lse (1, 2, 9) in float32, with blocks smaller than the sequence"""
    q, k, v = randn(rng, 1, 2, 9, 4), randn(rng, 1, 2, 11, 4), randn(rng, 1, 2, 11, 3)
    out, l = ex.flash_attention(q, k, v, block_size=4)
    shaped(out, (1, 2, 9, 3), torch.float32, ex, what="out", part=0)
    shaped(l, (1, 2, 9), torch.float32, ex, what="lse", part=1)


@graded("equivalence", 2)
def test_causal_matches_pytorch(ex, rng):
    """causal, L = S: matches F.scaled_dot_product_attention(is_causal=True)"""
    q, k, v = (randn(rng, 2, 2, 10, 4, dtype=F64) for _ in range(3))
    out, l = ex.flash_attention(q, k, v, causal=True, block_size=4)
    close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), ex, part=0, dtype=F64)
    close(l, lse(q, k, causal=True), ex, part=1, dtype=torch.float32)


@graded("rules", 0.5)
def test_rules(ex, rng):
    """uses no fused attention and no library softmax or logsumexp"""
    q = randn(rng, 1, 1, 2, 2)
    ex.flash_attention(q, q, q)
    rules_respected(ex)
