"""Public tests for exercise 04 (shapes and a few equivalence checks). The full grade runs the
course's hidden tests, in GitHub Classroom or Gradescope."""
import torch

from grader.checks import as_tensor, close, fail, graded, randn, rules_respected


def same_mask(got, expected, what):
    got = as_tensor(got)
    if got.dtype != torch.bool or got.shape != expected.shape or not torch.equal(got, expected):
        fail(f"{what}: expected a bool tensor of shape {tuple(expected.shape)} equal to\n{expected.int()}\n"
             f"got {got.dtype} {tuple(got.shape)}\n{got.int() if got.shape == expected.shape else ''}")


@graded("shapes", 1)
def test_mask_shapes(ex, rng):
    """causal_mask is bool (L, S) and padding_mask bool (B, 1, 1, S)"""
    got = as_tensor(ex.causal_mask(3, 5))
    if got.shape != (3, 5) or got.dtype != torch.bool:
        fail(f"causal_mask(3, 5): expected bool (3, 5), got {got.dtype} {tuple(got.shape)}")
    got = as_tensor(ex.padding_mask(torch.tensor([2, 4]), 4))
    if got.shape != (2, 1, 1, 4) or got.dtype != torch.bool:
        fail(f"padding_mask([2, 4], 4): expected bool (2, 1, 1, 4), got {got.dtype} {tuple(got.shape)}")


@graded("equivalence", 2)
def test_square_causal_mask(ex, rng):
    """causal_mask(L) blocks what torch.nn.Transformer.generate_square_subsequent_mask blocks"""
    for L in (1, 4, 7):
        expected = torch.isinf(torch.nn.Transformer.generate_square_subsequent_mask(L))
        same_mask(ex.causal_mask(L), expected, f"causal_mask({L})")


@graded("equivalence", 1.5)
def test_apply_mask_matches_masked_fill(ex, rng):
    """apply_mask equals scores.masked_fill(mask, finfo.min)"""
    scores = randn(rng, 2, 3, 4)
    mask = torch.rand(3, 4, generator=rng) < 0.5
    close(ex.apply_mask(scores, mask), scores.masked_fill(mask, torch.finfo(scores.dtype).min).double(), ex,
          dtype=torch.float32)


@graded("rules", 0.5)
def test_rules(ex, rng):
    """uses no fused attention"""
    ex.causal_mask(2)
    rules_respected(ex)
