"""Public tests for exercise 12 (shapes and a few checks). The full grade runs the course's hidden
tests, in GitHub Classroom or Gradescope."""
import torch

from grader.checks import as_tensor, fail, graded, randn, rules_respected


@graded("shapes", 1)
def test_shapes(ex, rng):
    """sinusoidal_encoding(7, 16) is float32 (7, 16); apply_rope keeps x's shape and dtype"""
    pe = as_tensor(ex.sinusoidal_encoding(7, 16))
    if pe.shape != (7, 16) or pe.dtype != torch.float32:
        fail(f"sinusoidal_encoding(7, 16): expected float32 (7, 16), got {pe.dtype} {tuple(pe.shape)}")
    x = randn(rng, 2, 3, 5, 8)
    out = as_tensor(ex.apply_rope(x))
    if out.shape != x.shape or out.dtype != x.dtype:
        fail(f"apply_rope: expected {x.dtype} {tuple(x.shape)}, got {out.dtype} {tuple(out.shape)}")


@graded("equivalence", 2)
def test_rope_is_a_rotation(ex, rng):
    """apply_rope keeps each vector's length, leaves position 0 alone, and q·k depends only on the signed offset"""
    x = randn(rng, 1, 1, 6, 8, dtype=torch.float64)
    out = as_tensor(ex.apply_rope(x))
    if not torch.allclose(out.norm(dim=-1), x.norm(dim=-1), atol=1e-9):
        fail("apply_rope changed the length of a vector: a rotation keeps it")
    if not torch.allclose(out[..., 0, :], x[..., 0, :], atol=1e-12):
        fail("apply_rope moved the vector at position 0: its angle is 0")
    q, k = randn(rng, 8, dtype=torch.float64), randn(rng, 8, dtype=torch.float64)
    seq = torch.stack([q, k, q, k]).reshape(1, 1, 4, 8)
    rot = as_tensor(ex.apply_rope(seq, torch.tensor([2, 5, 10, 13])))[0, 0]
    if not torch.allclose(rot[0] @ rot[1], rot[2] @ rot[3], atol=1e-9):
        fail("q at 2 with k at 5 and q at 10 with k at 13 should give one dot product (the same signed offset, −3)")


@graded("rules", 0.5)
def test_rules(ex, rng):
    """uses no fused attention"""
    ex.sinusoidal_encoding(2, 4)
    rules_respected(ex)
