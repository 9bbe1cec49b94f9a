"""Public tests for exercise 02 (shapes and a few equivalence checks). The full grade runs the
course's hidden tests, in GitHub Classroom or Gradescope."""
import torch

from grader.checks import close, graded, randn, rules_respected, shaped

F64 = torch.float64


@graded("shapes", 1)
def test_shape(ex, rng):
    """(2, 5, 12) with 3 heads becomes (2, 3, 5, 4)"""
    x = randn(rng, 2, 5, 12)
    shaped(ex.split_heads(x, 3), (2, 3, 5, 4), torch.float32, ex)


@graded("equivalence", 2)
def test_head_h_holds_its_slice(ex, rng):
    """head h holds features [h·d_head, (h+1)·d_head), as in nn.MultiheadAttention"""
    x = randn(rng, 3, 4, 16, dtype=F64)
    close(ex.split_heads(x, 4), torch.stack(x.chunk(4, dim=-1), dim=1), ex)


@graded("rules", 0.5)
def test_rules(ex, rng):
    """uses no fused attention"""
    ex.split_heads(randn(rng, 1, 2, 4), 2)
    rules_respected(ex)
