"""Hidden tests for exercise 08: the output projection that mixes the heads."""
import torch

from grader.checks import devices_kept
from grader.checks import (Mistake, close, graded, randint, randn, rounds_own_float64, rules_respected, shaped,
                           unchanged_inputs)
from grader.guards import LINEAR_LAYER

TITLE = "output projection"   # what the learner reads (README table: python -m grader.course sync)
CHECKS_DEVICES = True   # a test calls the code on the meta device (the zygote loads its kernels once)
FORBIDDEN = LINEAR_LAYER
STEP = "8. Output projection"


def _64(t):
    return None if t is None else t.to(torch.float64)


def oracle(x, w_o, b_o=None):
    """torch.matmul in float64: x @ w_oᵀ + b_o."""
    out = torch.matmul(_64(x), _64(w_o).transpose(0, 1))
    return out if b_o is None else out + _64(b_o)


def magnitude(x, w_o, b_o=None):
    m = _64(x).abs() @ _64(w_o).abs().T
    return m if b_o is None else m + _64(b_o).abs()


MISTAKES = [
    Mistake("output_projection", "the output projection is skipped (the merged heads returned as they are)", STEP,
            "After merging, each head's output still sits in its own block of features: the heads are mixed by a "
            "final linear layer, x @ w_o.T + b_o.",
            lambda x, w_o, b_o=None: _64(x), key="projection_skipped"),
    Mistake("output_projection", "`x @ W` instead of `x @ Wᵀ` (weights are stored (out, in))", STEP,
            "w_o is stored (d_out, H·d_head), as in nn.Linear: one row per output feature. Multiply by its "
            "transpose, x @ w_o.T.",
            lambda x, w_o, b_o=None: _64(x) @ _64(w_o) + (0 if b_o is None else _64(b_o)), key="weight_not_transposed"),
    Mistake("output_projection", "the bias is dropped", STEP,
            "The bias is part of the projection: add b_o (it broadcasts over B and L) when it is given.",
            lambda x, w_o, b_o=None: oracle(x, w_o), key="bias_dropped"),
    Mistake("output_projection", "the bias is subtracted instead of added", STEP,
            "An affine map is x @ w_o.T + b_o.",
            lambda x, w_o, b_o=None: oracle(x, w_o, None if b_o is None else -_64(b_o)), key="bias_subtracted"),
]


def check(ex, x, w_o, b_o=None, dtype=None):
    dtype = dtype or x.dtype
    args = (x, w_o) if b_o is None else (x, w_o, b_o)
    close(ex.output_projection(*args), oracle(x, w_o, b_o), ex, dtype=dtype, magnitude=magnitude(x, w_o, b_o))


def inputs(rng, dtype, d_out=None, bias=True, B=None):
    B = B or randint(rng, 2, 4)
    L, H, d = randint(rng, 2, 6), randint(rng, 2, 4), randint(rng, 2, 4)
    D = H * d
    d_out = d_out or D
    x = randn(rng, B, L, D, dtype=dtype)
    w = randn(rng, d_out, D, dtype=dtype, scale=0.5)
    b = randn(rng, d_out, dtype=dtype) if bias else None
    return x, w, b


@graded("shapes", 1.5)
def test_shape_b_l_dout(ex, rng):
    """(B, L, H·d_head) -> (B, L, d_out), also when d_out differs from H·d_head, keeping the dtype"""
    for dtype in (torch.float64, torch.float32):
        for d_out in (None, randint(rng, 1, 4)):
            x, w, b = inputs(rng, dtype, d_out=d_out and randint(rng, 2, 5) * 4 + d_out)
            shaped(ex.output_projection(x, w, b), (*x.shape[:-1], w.shape[0]), dtype, ex)


@graded("equivalence", 3)
def test_matches_x_times_w_transposed_plus_bias(ex, rng):
    """matches x @ w_oᵀ + b_o (nn.Linear layout) with a square weight, with and without a bias"""
    x, w, b = inputs(rng, torch.float64)
    check(ex, x, w, b)
    x, w, _ = inputs(rng, torch.float64, bias=False)
    check(ex, x, w)


@graded("fp16", 1.5)
def test_half_precision(ex, rng):
    """keeps float16 and bfloat16, accurate to the dtype (products may accumulate in it)"""
    for dtype in (torch.float16, torch.bfloat16):
        x, w, b = inputs(rng, dtype)
        rounds_own_float64(ex, "output_projection", x, w, b, dtype=dtype, magnitude=magnitude(x, w, b))
        rounds_own_float64(ex, "output_projection", x, w, dtype=dtype, magnitude=magnitude(x, w))   # no bias: still half


@graded("edge", 1)
def test_one_token_and_bias_none_by_keyword(ex, rng):
    """B = 1, L = 1 and b_o=None given by keyword work"""
    x, w, b = inputs(rng, torch.float32, B=1)
    x = x[:, :1]
    close(ex.output_projection(x, w, b_o=None), oracle(x, w), ex, dtype=torch.float32, magnitude=magnitude(x, w))


@graded("edge", 0.5, checks="inputs")
def test_inputs_left_alone(ex, rng):
    """x, w_o and b_o are not modified"""
    x, w, b = inputs(rng, torch.float64)
    unchanged_inputs(ex, "output_projection", x, w, b)


@graded("rules", 0.5)
def test_no_library_linear(ex, rng):
    """is built without torch.nn.functional.linear or torch.nn.Linear"""
    ex.output_projection(randn(rng, 1, 2, 4), randn(rng, 3, 4))
    rules_respected(ex)


@graded("edge", 0.25, checks="device")
def test_result_lives_on_the_inputs_device(ex, rng):
    """the result lives on the inputs' device, with b_o=None too (checked on the meta device)"""
    B, L, D, d_out = 2, 3, 6, 5     # fixed, as the point is: the same on every seed
    devices_kept(ex, "output_projection", randn(rng, B, L, D), randn(rng, d_out, D))
