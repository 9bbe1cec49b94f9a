"""Public tests for exercise 10 (shapes and a few equivalence checks). The full grade runs the
course's hidden tests, in GitHub Classroom or Gradescope."""
import torch
from torch import nn

from grader.checks import close, graded, randn, rules_respected, shaped

F64 = torch.float64
NAMES = ("q_proj", "k_proj", "v_proj", "out_proj")


def mha_forward(module, query, weights, num_heads, **forward_kwargs):
    m = module.MultiHeadAttention(query.shape[-1], num_heads).to(query.dtype)
    with torch.no_grad():
        for i, name in enumerate(NAMES):
            getattr(m, name).weight.copy_(weights[2 * i])
            getattr(m, name).bias.copy_(weights[2 * i + 1])
    m.eval()
    with torch.no_grad():
        return m(query, **forward_kwargs)


def pytorch(query, weights, num_heads, **kwargs):
    D = query.shape[-1]
    ref = nn.MultiheadAttention(D, num_heads, batch_first=True).to(query.dtype).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat(weights[0:6:2]))
        ref.in_proj_bias.copy_(torch.cat(weights[1:6:2]))
        ref.out_proj.weight.copy_(weights[6])
        ref.out_proj.bias.copy_(weights[7])
        return ref(query, query, query, average_attn_weights=False, **kwargs)


def draw(rng, B, L, D):
    weights = [t for _ in NAMES for t in (randn(rng, D, D, dtype=F64, scale=D ** -0.5), randn(rng, D, dtype=F64))]
    return randn(rng, B, L, D, dtype=F64), weights


@graded("shapes", 1)
def test_shape(ex, rng):
    """(2, 5, 16) with 4 heads gives (2, 5, 16), and weights (2, 4, 5, 5) when asked"""
    x, weights = draw(rng, 2, 5, 16)
    out, attn = ex.run(mha_forward, x, weights, 4, need_weights=True)
    shaped(out, (2, 5, 16), x.dtype, ex, what="out", part=0)
    shaped(attn, (2, 4, 5, 5), x.dtype, ex, what="weights", part=1)


@graded("equivalence", 2)
def test_matches_nn_multiheadattention(ex, rng):
    """matches nn.MultiheadAttention(batch_first=True) with the same weights and a padding mask"""
    x, weights = draw(rng, 3, 6, 12)
    pad = torch.zeros(3, 6, dtype=torch.bool)
    pad[1, 4:] = True
    out = ex.run(mha_forward, x, weights, 3, key_padding_mask=pad)
    close(out, pytorch(x, weights, 3, key_padding_mask=pad)[0], ex)


@graded("rules", 0.5)
def test_rules(ex, rng):
    """uses no fused attention and no nn.MultiheadAttention"""
    x, weights = draw(rng, 1, 2, 4)
    ex.run(mha_forward, x, weights, 2)
    rules_respected(ex)
