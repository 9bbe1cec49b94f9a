"""Hidden tests for exercise 05: a numerically stable softmax along any axis."""
import torch

from grader.checks import (Mistake, close, graded, randint, randn, rounds_own_float64, rules_respected, shaped,
                           unchanged_inputs)
from grader.guards import SOFTMAX_FAMILY

TITLE = "stable softmax over the keys"   # what the learner reads (README table: python -m grader.course sync)
FORBIDDEN = SOFTMAX_FAMILY
STEP = "5. Stable softmax over the key axis"


def oracle(x, dim=-1):
    """The right answer, in float64; a slice of all -inf has no mass and gives zeros."""
    x = x.to(torch.float64)
    p = torch.softmax(x, dim)
    return torch.where(torch.isneginf(x).all(dim, keepdim=True), 0.0, p)


def _naive(x, dim=-1):
    e = x.exp()
    return e / e.sum(dim, keepdim=True)


def _global_max(x, dim=-1, guard=False):
    """One max for the whole tensor: a slice far below it underflows to 0 / 0 (or to zeros, `guard`).
    The exp runs in the input's dtype (float32 for half): where it underflows depends on it."""
    x = x.to(torch.float32) if x.dtype in (torch.float16, torch.bfloat16) else x
    e = (x - x.max()).exp().to(torch.float64)
    total = e.sum(dim, keepdim=True)
    return e / (total.masked_fill(total == 0, 1.0) if guard else total)


MISTAKES = [
    Mistake("softmax", "the `dim` argument is ignored", STEP,
            "Normalise along the axis you are given, not always the last one.",
            lambda x, dim=-1: oracle(x, -1), key="dim_ignored"),
    Mistake("softmax", "softmax over the wrong axis (the query axis instead of the key axis)", STEP,
            "Normalise along `dim` (the last axis for scores): each query spreads its attention over the keys.",
            lambda x, dim=-1: oracle(x, (dim if dim >= 0 else x.dim() + dim) - 1), key="query_axis"),
    Mistake("softmax", "a slice whose entries are all -inf comes out NaN", STEP,
            "Such a slice has no mass: its max is -inf and -inf - (-inf) is NaN. Replace a -inf max by 0 "
            "(or return zeros for that slice).",
            lambda x, dim=-1: torch.softmax(x.to(torch.float64), dim), key="nan_on_all_masked"),
    Mistake("softmax", "the row max is not subtracted before exp, so large logits overflow to inf and NaN", STEP,
            "Subtract the max along `dim` first (x - x.amax(dim, keepdim=True)): softmax is unchanged by a shift, "
            "and every exp is then at most 1.",
            _naive, key="no_max_subtracted"),
    Mistake("softmax", "the max is taken over the whole tensor, not along `dim`", STEP,
            "Subtract the max of each slice along `dim` (x.amax(dim, keepdim=True)): one max for the whole tensor "
            "leaves slices far below it to underflow to 0 / 0 = NaN.",
            lambda x, dim=-1: _global_max(x, dim), key="global_max"),
    Mistake("softmax", "the max is taken over the whole tensor, not along `dim`", STEP,
            "Subtract the max of each slice along `dim` (x.amax(dim, keepdim=True)): one max for the whole tensor "
            "leaves slices far below it to underflow to all zeros.",
            lambda x, dim=-1: _global_max(x, dim, guard=True), key="global_max"),
    Mistake("softmax", "the result is not normalised (exp without dividing by the sum)", STEP,
            "Divide by the sum along `dim` so that each slice sums to 1.",
            lambda x, dim=-1: (x.to(torch.float64) - x.to(torch.float64).amax(dim, keepdim=True)).exp(), key="not_normalised"),
]


def random_shape(rng):
    return tuple(randint(rng, 1, 6) for _ in range(randint(rng, 1, 5)))


@graded("shapes", 1)
def test_keeps_shape_and_dtype(ex, rng):
    """keeps the input's shape and dtype"""
    for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
        for shape in ((2, 3, 5), random_shape(rng)):    # the fixed one on every seed: no axis repeats a size
            x = randn(rng, *shape, dtype=dtype)
            shaped(ex.softmax(x), x.shape, dtype, ex)


@graded("equivalence", 2)
def test_matches_torch_softmax_on_last_axis(ex, rng):
    """matches torch.softmax along the last axis"""
    for dtype in (torch.float64, torch.float32):
        for _ in range(2):
            x = randn(rng, randint(rng, 2, 4), randint(rng, 2, 6), randint(rng, 2, 9), dtype=dtype, scale=3)
            close(ex.softmax(x, dim=-1), oracle(x, -1), ex, dtype=dtype)


@graded("equivalence", 1.5)
def test_normalises_along_the_given_dim(ex, rng):
    """normalises along the `dim` it is given"""
    x = randn(rng, 3, 4, 5, 6, dtype=torch.float64)
    for dim in (0, 1, -2, 2):
        close(ex.softmax(x, dim=dim), oracle(x, dim), ex)


@graded("fp16", 1.5)
def test_float16_logits_up_to_6e4(ex, rng):
    """stays finite and exact for float16 logits up to 6e4"""
    x = randn(rng, 4, 9, dtype=torch.float64, scale=2e4).clamp(-6e4, 6e4)
    x[0, 0] = 6e4
    x[1, :] = -6e4
    x = x.to(torch.float16)
    rounds_own_float64(ex, "softmax", x, dtype=torch.float16)


@graded("edge", 1)
def test_large_logits_in_float32(ex, rng):
    """stays finite and exact for float32 logits of magnitude 1e4"""
    x = randn(rng, 3, 8, dtype=torch.float32, scale=1e4)
    close(ex.softmax(x), oracle(x), ex, dtype=torch.float32)


@graded("masking", 0.75)
def test_minus_inf_entries_get_zero_weight(ex, rng):
    """-inf entries get zero weight; the rest of their slice sums to 1"""
    x = randn(rng, 2, 5, 7, dtype=torch.float32)
    x[0, 1, 2:] = float("-inf")
    x[1, 3, 1::2] = float("-inf")
    close(ex.softmax(x), oracle(x), ex, dtype=torch.float32)


@graded("masking", 0.75)
def test_fully_masked_slices_give_zeros(ex, rng):
    """a slice whose entries are all -inf gives zeros, not NaN"""
    x = randn(rng, 2, 5, 7, dtype=torch.float32)
    x[0, 1, 2:] = float("-inf")
    x[1, 3, :] = float("-inf")
    close(ex.softmax(x), oracle(x), ex, dtype=torch.float32)


@graded("edge", 0.5, checks="inputs")
def test_input_left_alone(ex, rng):
    """leaves its input unchanged"""
    x = randn(rng, 3, 4, dtype=torch.float32)
    unchanged_inputs(ex, "softmax", x)


@graded("edge", 0.5)
def test_single_element_gives_one(ex, rng):
    """a slice of a single element gives 1 (a 1-element tensor, and a column along its last axis)"""
    one = randn(rng, 1, dtype=torch.float64)
    close(ex.softmax(one, dim=0), torch.ones(1, dtype=torch.float64), ex)
    col = randn(rng, 4, 1, dtype=torch.float64)
    close(ex.softmax(col, dim=-1), torch.ones(4, 1, dtype=torch.float64), ex)


@graded("rules", 0.5)
def test_no_library_softmax(ex, rng):
    """is built without a library softmax, log-softmax or logsumexp"""
    ex.softmax(randn(rng, 2, 3))
    rules_respected(ex)

