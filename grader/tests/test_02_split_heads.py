"""Hidden tests for exercise 02: splitting the feature axis into heads."""
import torch

from grader.checks import Mistake, close, graded, raises, randint, randn, rules_respected, shaped, unchanged_inputs

TITLE = "split heads"   # what the learner reads (README table: python -m grader.course sync)
STEP = "2. Split heads"


def oracle(x, num_heads):
    """Head h is the contiguous block of features [h·d, (h+1)·d): slices stacked on a new axis 1."""
    d = x.shape[-1] // num_heads
    return torch.stack([x[..., h * d:(h + 1) * d] for h in range(num_heads)], dim=1).to(torch.float64)


def _sizes(x, H):
    B, L, D = x.shape
    return B, L, D, D // H


MISTAKES = [
    Mistake("split_heads", "`view(B, H, L, d_head)` without the transpose", STEP,
            "A bare view to (B, H, L, d_head) cuts the flat memory of (L, D) into H pieces, mixing the features "
            "of different tokens into one head. Split the feature axis first, x.reshape(B, L, H, d_head), then "
            "move heads before length with .transpose(1, 2).",
            lambda x, H: x.reshape(_sizes(x, H)[0], H, _sizes(x, H)[1], _sizes(x, H)[3]), key="view_without_transpose"),
    Mistake("split_heads", "heads interleaved (feature f sent to head f % H)", STEP,
            "Head h holds a contiguous block of features, [h·d_head, (h+1)·d_head), as in nn.MultiheadAttention: "
            "reshape the last axis to (H, d_head), not (d_head, H).",
            lambda x, H: x.reshape(*_sizes(x, H)[:2], _sizes(x, H)[3], H).permute(0, 3, 1, 2), key="heads_interleaved"),
    Mistake("split_heads", "heads not moved before the length axis (result (B, L, H, d_head))", STEP,
            "After splitting the features, swap the length and head axes (.transpose(1, 2)) so that (B, H) "
            "act as batch axes.",
            lambda x, H: x.reshape(*_sizes(x, H)[:2], H, _sizes(x, H)[3]), key="heads_not_moved"),
    Mistake("split_heads", "`num_heads` used as the head size (D // H heads of H features)", STEP,
            "num_heads is the number of heads H; each head has d_head = D // H features.",
            lambda x, H: x.reshape(*_sizes(x, H)[:2], _sizes(x, H)[3], H).transpose(1, 2), key="num_heads_as_head_size"),
]


def exact(ex, x, H, dtype=None):
    """A split only moves numbers around: the result must match exactly."""
    close(ex.split_heads(x, H), oracle(x, H), ex, dtype=dtype or x.dtype, rtol=0, atol=0)


def sizes(rng):
    H, d = randint(rng, 2, 5), randint(rng, 2, 5)
    L = randint(rng, 2, 7)
    while L == H:                        # L != H, so a missing transpose changes the shape or values
        L = randint(rng, 2, 7)
    return randint(rng, 2, 4), L, H, d


@graded("shapes", 1.5)
def test_shape_b_h_l_dhead(ex, rng):
    """(B, L, D) -> (B, H, L, D // H), keeping the dtype"""
    for dtype in (torch.float64, torch.float32):
        B, L, H, d = sizes(rng)
        shaped(ex.split_heads(randn(rng, B, L, H * d, dtype=dtype), H), (B, H, L, d), dtype, ex)


@graded("equivalence", 3)
def test_head_h_holds_a_contiguous_block(ex, rng):
    """head h holds features [h·d_head, (h+1)·d_head) of every token, as in nn.MultiheadAttention"""
    B, L, H, d = sizes(rng)
    # x[b, l, f] = 1000 b + 100 l + f: any misplaced number is easy to read in the report
    x = (1000 * torch.arange(B)[:, None, None] + 100 * torch.arange(L)[None, :, None]
         + torch.arange(H * d)[None, None, :]).to(torch.float32)
    exact(ex, x, H)
    B, L, H, d = sizes(rng)
    exact(ex, randn(rng, B, L, H * d, dtype=torch.float64), H)


@graded("fp16", 1)
def test_half_precision_exact(ex, rng):
    """float16 and bfloat16 come back in their dtype, values unchanged"""
    for dtype in (torch.float16, torch.bfloat16):
        B, L, H, d = sizes(rng)
        exact(ex, randn(rng, B, L, H * d, dtype=dtype, scale=100), H)


@graded("edge", 1.5)
def test_value_error_when_not_divisible(ex, rng):
    """raises ValueError when D is not a multiple of num_heads"""
    H = randint(rng, 2, 5)
    D = H * randint(rng, 1, 4) + randint(rng, 1, H)
    raises(ex, "ValueError", "split_heads", randn(rng, 2, 3, D), H, why=f" ({D} features do not split into {H} heads)")
    raises(ex, "ValueError", "split_heads", randn(rng, 1, 2, 6), 4, why=" (6 features do not split into 4 heads)")


@graded("edge", 1)
def test_one_head_and_one_feature_per_head(ex, rng):
    """H = 1, H = D (one feature per head), B = 1 and L = 1 all work"""
    D = randint(rng, 2, 7)
    exact(ex, randn(rng, randint(rng, 2, 4), randint(rng, 2, 5), D, dtype=torch.float64), 1)
    x = randn(rng, 1, 1, D, dtype=torch.float32)
    close(ex.split_heads(x, D), oracle(x, D), ex, dtype=torch.float32, rtol=0, atol=0)
    B, L, H, d = sizes(rng)
    exact(ex, randn(rng, 1, L, H * d, dtype=torch.float64), H)


@graded("edge", 0.5, checks="inputs")
def test_input_left_alone(ex, rng):
    """the input is not modified"""
    B, L, H, d = sizes(rng)
    x = randn(rng, B, L, H * d, dtype=torch.float32)
    unchanged_inputs(ex, "split_heads", x, H)


@graded("rules", 0.5)
def test_no_fused_attention(ex, rng):
    """is built without a fused attention helper"""
    ex.split_heads(randn(rng, 1, 2, 4), 2)
    rules_respected(ex)
