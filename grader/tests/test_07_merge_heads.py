"""Hidden tests for exercise 07: merging the heads back into one feature axis."""
import torch

from grader.checks import Mistake, close, graded, randint, randn, rules_respected, shaped, unchanged_inputs

TITLE = "merge heads"   # what the learner reads (README table: python -m grader.course sync)
STEP = "7. Merge heads"


def oracle(x):
    """Head h fills features [h·d, (h+1)·d) of every token: the heads concatenated along features."""
    return torch.cat([x[:, h] for h in range(x.shape[1])], dim=-1).to(torch.float64)


def _sizes(x):
    B, H, L, d = x.shape
    return B, H, L, d


MISTAKES = [
    Mistake("merge_heads", "reshape without transposing back first", STEP,
            "A bare reshape of (B, H, L, d_head) to (B, L, H·d_head) reads the heads' memory in order and mixes the "
            "features of different tokens. Move heads next to d_head first, x.transpose(1, 2) -> (B, L, H, d_head), "
            "then reshape (not view: the transposed tensor is not contiguous).",
            lambda x: x.reshape(_sizes(x)[0], _sizes(x)[2], _sizes(x)[1] * _sizes(x)[3]), key="no_transpose_back"),
    Mistake("merge_heads", "heads interleaved (feature h·d_head + i taken from position i·H + h)", STEP,
            "Head h must fill the contiguous block of features [h·d_head, (h+1)·d_head), the inverse of split_heads: "
            "transpose to (B, L, H, d_head) and flatten the last two axes, in that order (not (d_head, H)).",
            lambda x: x.permute(0, 2, 3, 1).reshape(_sizes(x)[0], _sizes(x)[2], _sizes(x)[1] * _sizes(x)[3]), key="heads_interleaved"),
    Mistake("merge_heads", "the heads are not merged (the result is (B, L, H, d_head))", STEP,
            "After moving the heads next to d_head, flatten them into one feature axis of size H·d_head.",
            lambda x: x.transpose(1, 2), key="heads_not_merged"),
]


def exact(ex, x, dtype=None):
    """Merging only moves numbers around: the result must match exactly."""
    close(ex.merge_heads(x), oracle(x), ex, dtype=dtype or x.dtype, rtol=0, atol=0)


def sizes(rng):
    H, d = randint(rng, 2, 5), randint(rng, 2, 5)
    L = randint(rng, 2, 7)
    while L == H:                        # L != H: a missing transpose mixes tokens visibly
        L = randint(rng, 2, 7)
    return randint(rng, 2, 4), H, L, d


@graded("shapes", 1.5)
def test_shape_b_l_h_times_dhead(ex, rng):
    """(B, H, L, d_head) -> (B, L, H·d_head), keeping the dtype"""
    for dtype in (torch.float64, torch.float32):
        B, H, L, d = sizes(rng)
        shaped(ex.merge_heads(randn(rng, B, H, L, d, dtype=dtype)), (B, L, H * d), dtype, ex)


@graded("equivalence", 3)
def test_inverse_of_split_heads(ex, rng):
    """undoes split_heads: head h fills features [h·d_head, (h+1)·d_head) of every token"""
    B, H, L, d = sizes(rng)
    # y[b, l, f] = 1000 b + 100 l + f, split into heads as nn.MultiheadAttention does: merging must give y back
    y = (1000 * torch.arange(B)[:, None, None] + 100 * torch.arange(L)[None, :, None]
         + torch.arange(H * d)[None, None, :]).to(torch.float32)
    x = y.reshape(B, L, H, d).transpose(1, 2).contiguous()
    close(ex.merge_heads(x), y.to(torch.float64), ex, dtype=torch.float32, rtol=0, atol=0)
    B, H, L, d = sizes(rng)
    exact(ex, randn(rng, B, H, L, d, dtype=torch.float64))


@graded("fp16", 1)
def test_half_precision_exact(ex, rng):
    """float16 and bfloat16 come back in their dtype, values unchanged"""
    for dtype in (torch.float16, torch.bfloat16):
        B, H, L, d = sizes(rng)
        exact(ex, randn(rng, B, H, L, d, dtype=dtype, scale=100))


@graded("edge", 0.5)
def test_one_head_one_token(ex, rng):
    """H = 1, L = 1 and B = 1 work"""
    B, H, L, d = sizes(rng)
    exact(ex, randn(rng, B, 1, L, d, dtype=torch.float64))
    exact(ex, randn(rng, 1, H, 1, d, dtype=torch.float64))


@graded("edge", 0.5)
def test_strided_input(ex, rng):
    """a non-contiguous input (a transposed view, as split_heads returns it) works"""
    B, H, L, d = sizes(rng)
    x = randn(rng, B, L, H, d, dtype=torch.float32).transpose(1, 2)     # a (B, H, L, d) view of (B, L, H, d)
    close(ex.merge_heads(x), oracle(x), ex, dtype=torch.float32, rtol=0, atol=0)


@graded("edge", 0.5, checks="inputs")
def test_input_left_alone(ex, rng):
    """the input is not modified, a strided view included"""
    B, H, L, d = sizes(rng)
    x = randn(rng, B, L, H, d, dtype=torch.float32).transpose(1, 2)
    unchanged_inputs(ex, "merge_heads", x)


@graded("rules", 0.5)
def test_no_fused_attention(ex, rng):
    """is built without a fused attention helper"""
    ex.merge_heads(randn(rng, 1, 2, 2, 2))
    rules_respected(ex)
