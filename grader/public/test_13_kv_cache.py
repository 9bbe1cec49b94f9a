"""Public tests for exercise 13 (shapes and a few equivalence checks). The full grade runs the
course's hidden tests, in GitHub Classroom or Gradescope."""
import torch
import torch.nn.functional as F

from grader.checks import close, graded, randn, rules_respected

F64 = torch.float64


def decode(module, q, k, v, chunks, max_len):
    B, H, _, d = k.shape
    cache = module.KVCache(B, H, max_len, d, dtype=k.dtype, device=k.device)
    outs, lens, start = [], [], 0
    for T in chunks:
        outs.append(module.cached_attention(q[:, :, start:start + T], k[:, :, start:start + T],
                                            v[:, :, start:start + T], cache))
        lens.append(len(cache))
        start += T
    return outs, lens


@graded("shapes", 1)
def test_lengths(ex, rng):
    """len(cache) grows by each chunk's length: 3, 4, 5"""
    q, k, v = (randn(rng, 1, 2, 5, 4, dtype=F64) for _ in range(3))
    _, lens = ex.run(decode, q, k, v, [3, 1, 1], 8)
    if lens != [3, 4, 5]:
        from grader.checks import fail
        fail(f"len(cache) after chunks of 3, 1, 1 tokens: expected [3, 4, 5], got {lens}")


@graded("equivalence", 2)
def test_decoding_equals_causal_attention(ex, rng):
    """prefill then token by token equals F.scaled_dot_product_attention(is_causal=True)"""
    q, k, v = (randn(rng, 2, 2, 6, 4, dtype=F64) for _ in range(3))
    outs, _ = ex.run(decode, q, k, v, [3, 1, 1, 1], 8)
    close(torch.cat(outs, dim=2) if all(isinstance(o, torch.Tensor) for o in outs) else outs,
          F.scaled_dot_product_attention(q, k, v, is_causal=True), ex)


@graded("rules", 0.5)
def test_rules(ex, rng):
    """uses no fused attention"""
    q = randn(rng, 1, 1, 2, 2)
    ex.run(decode, q, q, q, [2], 2)
    rules_respected(ex)
