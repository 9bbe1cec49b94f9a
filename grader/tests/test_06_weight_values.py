"""Hidden tests for exercise 06: weighting the values by the attention probabilities."""
import torch

from grader.checks import no_loops
from grader.checks import (Mistake, close, graded, randint, randn, rounds_own_float64, rules_respected, shaped,
                           unchanged_inputs)

TITLE = "weight the values"   # what the learner reads (README table: python -m grader.course sync)
STEP = "6. Weight the values"


def _64(t):
    return t.to(torch.float64)


def oracle(probs, v):
    """torch.matmul in float64: out[..., i, :] = sum_j probs[..., i, j] * v[..., j, :]."""
    return torch.matmul(_64(probs), _64(v))


def magnitude(probs, v):
    """|probs| @ |v|: the size of the terms summed into each output (for half-precision tolerances)."""
    return _64(probs).abs() @ _64(v).abs()


MISTAKES = [
    Mistake("weight_values", "the probabilities are transposed (the sum runs over the queries, not the keys)", STEP,
            "The product is (L, S) @ (S, d_v): each query row of probs weights the S value rows. Use probs as it "
            "is, `probs @ v`, without transposing it.",
            lambda probs, v: _64(probs).transpose(-2, -1) @ _64(v), key="probs_transposed"),
]


def probabilities(rng, *shape, dtype=torch.float64, scale=1.5):
    """Rows that sum to 1, as the softmax of random scores gives them."""
    return torch.softmax(randn(rng, *shape, dtype=torch.float64, scale=scale), dim=-1).to(dtype)


def check(ex, probs, v, dtype=None):
    dtype = dtype or probs.dtype
    close(ex.weight_values(probs, v), oracle(probs, v), ex, dtype=dtype, magnitude=magnitude(probs, v))


def sizes(rng):
    """L != S and d_v != S, so that a transposed operand changes the shape or raises."""
    L, S = randint(rng, 2, 6), randint(rng, 2, 7)
    while S == L:
        S = randint(rng, 2, 7)
    d_v = randint(rng, 2, 7)
    while d_v in (S, L):
        d_v = randint(rng, 2, 8)
    return L, S, d_v


@graded("shapes", 1.5)
def test_shape_l_by_dv_for_any_leading_axes(ex, rng):
    """(..., L, S) @ (..., S, d_v) -> (..., L, d_v) for 2-D, 3-D and 4-D inputs, L != S, keeping the dtype"""
    for lead, dtype in (((randint(rng, 2, 4), randint(rng, 2, 4)), torch.float32),
                        ((randint(rng, 2, 4),), torch.float64), ((), torch.float32)):
        L, S, d_v = sizes(rng)
        shaped(ex.weight_values(probabilities(rng, *lead, L, S, dtype=dtype), randn(rng, *lead, S, d_v, dtype=dtype)),
               (*lead, L, d_v), dtype, ex)


@graded("equivalence", 3)
def test_matches_matmul(ex, rng):
    """matches torch.matmul(probs, v) for a batch of heads, including L == S"""
    B, H = randint(rng, 2, 4), randint(rng, 2, 4)
    L = S = randint(rng, 3, 6)          # square: a transposed probs has the right shape, wrong values
    d_v = L + randint(rng, 1, 3)
    check(ex, probabilities(rng, B, H, L, S), randn(rng, B, H, S, d_v, dtype=torch.float64))
    L, S, d_v = sizes(rng)
    check(ex, probabilities(rng, B, H, L, S), randn(rng, B, H, S, d_v, dtype=torch.float64))


@graded("masking", 1.5)
def test_masked_keys_and_empty_rows(ex, rng):
    """keys with zero probability contribute nothing; a one-hot row copies one value row; a zero row gives 0"""
    B, L, S, d_v = 2, 4, randint(rng, 5, 8), randint(rng, 2, 5)
    scores = randn(rng, B, L, S, dtype=torch.float64, scale=1.5)
    scores[..., -2:] = float("-inf")               # the last two keys are padding
    scores[0, 1, :] = float("-inf")                # a query that sees no key: softmax gives zeros
    probs = torch.softmax(scores, -1).nan_to_num(0.0)
    probs[1, 2] = 0.0
    probs[1, 2, randint(rng, 0, S - 2)] = 1.0      # one-hot: exactly one value row
    v = randn(rng, B, S, d_v, dtype=torch.float64)
    v[..., -2:, :] = 1e6                           # padded values must not leak
    check(ex, probs, v)


@graded("fp16", 1.5)
def test_half_precision(ex, rng):
    """keeps float16 and bfloat16, accurate to the dtype"""
    for dtype in (torch.float16, torch.bfloat16):
        L, S, d_v = sizes(rng)
        B, H = randint(rng, 1, 3), randint(rng, 2, 4)
        probs, v = probabilities(rng, B, H, L, S, dtype=dtype), randn(rng, B, H, S, d_v, dtype=dtype, scale=30)
        rounds_own_float64(ex, "weight_values", probs, v, dtype=dtype, magnitude=magnitude(probs, v))


@graded("edge", 1)
def test_single_key_or_single_query(ex, rng):
    """S = 1 returns the value row; L = 1 (a single query) works"""
    B, L, d_v = randint(rng, 1, 4), randint(rng, 2, 5), randint(rng, 2, 5)
    probs = torch.ones(B, L, 1, dtype=torch.float64)
    v = randn(rng, B, 1, d_v, dtype=torch.float64)
    check(ex, probs, v)
    L, S, d_v = sizes(rng)
    probs, v = probabilities(rng, 2, 1, S, dtype=torch.float32), randn(rng, 2, S, d_v, dtype=torch.float32)
    close(ex.weight_values(probs, v), oracle(probs, v), ex, dtype=torch.float32, magnitude=magnitude(probs, v))


@graded("edge", 0.5, checks="inputs")
def test_inputs_left_alone(ex, rng):
    """probs and v are not modified"""
    L, S, d_v = sizes(rng)
    probs, v = probabilities(rng, 2, L, S, dtype=torch.float32), randn(rng, 2, S, d_v, dtype=torch.float32)
    unchanged_inputs(ex, "weight_values", probs, v)


@graded("work", 0.5)
def test_no_python_loops(ex, rng):
    """dispatches as many tensor operations for 8 heads, batches or queries as for 2: no Python loop"""
    def call(B, H, L):
        ex.weight_values(probabilities(rng, B, H, L, 5), randn(rng, B, H, 5, 3, dtype=torch.float64))
    no_loops(ex, call, {"B": (2, 8), "H": (2, 8), "L": (2, 8)})


@graded("rules", 0.5)
def test_no_fused_attention(ex, rng):
    """is built without a fused attention helper"""
    ex.weight_values(probabilities(rng, 2, 3, dtype=torch.float32), randn(rng, 3, 2))
    rules_respected(ex)
