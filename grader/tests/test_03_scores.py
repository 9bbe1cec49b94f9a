"""Hidden tests for exercise 03: scaled dot-product scores q @ kᵀ · scale."""
import math

import torch

from grader.checks import (Mistake, agrees, close, crash_mistake, fail, graded, no_loops, randint, randn,
                           rules_respected, shaped,
                           unchanged_inputs)
from grader.sandbox import SubmissionError

TITLE = "scores: Q Kᵀ / sqrt(d_k)"   # what the learner reads (README table: python -m grader.course sync)
STEP = "3. Scores: Q @ K^T / sqrt(d_k)"


def _scale(q, scale):
    return 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale


def oracle(q, k, scale=None):
    """torch.matmul in float64, with the contract's default scale 1/sqrt(d_k)."""
    q, k = q.to(torch.float64), k.to(torch.float64)
    return torch.matmul(q, k.transpose(-1, -2)) * _scale(q, scale)


def magnitude(q, k, scale=None):
    """|q| @ |k|ᵀ · |scale|: how large the summed terms are (cancellation widens the tolerance)."""
    q, k = q.to(torch.float64).abs(), k.to(torch.float64).abs()
    return torch.matmul(q, k.transpose(-1, -2)) * abs(_scale(q, scale))


def _raw(q, k):
    return torch.matmul(q.to(torch.float64), k.to(torch.float64).transpose(-1, -2))


def _d_model(q):
    """What a learner might take for d_model: all heads' features, H · d_k, for (B, H, L, d_k) input."""
    return q.shape[-1] * (q.shape[-3] if q.dim() >= 4 else 1)


WRONG_TRANSPOSE = "transposed the wrong axes (`k.T` on a batched tensor)"
WRONG_TRANSPOSE_FIX = ("`k.T` reverses every axis of a 3-D or 4-D tensor, batch and heads included. Transpose "
                       "the last two axes only: k.transpose(-2, -1) (or k.mT).")

MISTAKES = [
    Mistake("attention_scores", "no scaling", STEP,
            "Multiply by 1/sqrt(d_k): the dot product of d_k unit-variance components has variance d_k, and "
            "unscaled scores push the softmax into saturation.",
            lambda q, k, scale=None: _raw(q, k), key="no_scaling"),
    Mistake("attention_scores", "scaled by 1/d_k instead of 1/sqrt(d_k)", STEP,
            "The factor is 1/sqrt(d_k): it brings the variance d_k of the dot product back to 1.",
            lambda q, k, scale=None: _raw(q, k) / q.shape[-1] if scale is None else oracle(q, k, scale), key="scaled_by_d_k"),
    Mistake("attention_scores", "scaled by 1/sqrt(d_model) (all heads' features) instead of 1/sqrt(d_k)", STEP,
            "The factor is 1/sqrt(d_k) with d_k = q.shape[-1], the per-head key size, not d_model = H · d_k.",
            lambda q, k, scale=None: _raw(q, k) / math.sqrt(_d_model(q)) if scale is None else oracle(q, k, scale), key="scaled_by_d_model"),
    Mistake("attention_scores", "scaled by 1/sqrt of the number of keys S (k.shape[-2]) instead of d_k", STEP,
            "The factor is 1/sqrt(d_k) with d_k = q.shape[-1] (the size of each key vector), not a length.",
            lambda q, k, scale=None: _raw(q, k) / math.sqrt(k.shape[-2]) if scale is None else oracle(q, k, scale), key="scaled_by_num_keys"),
    Mistake("attention_scores", "scaled by 1/sqrt of the number of queries L (q.shape[-2]) instead of d_k", STEP,
            "The factor is 1/sqrt(d_k) with d_k = q.shape[-1] (the size of each key vector), not a length.",
            lambda q, k, scale=None: _raw(q, k) / math.sqrt(q.shape[-2]) if scale is None else oracle(q, k, scale), key="scaled_by_num_queries"),
    Mistake("attention_scores", "multiplied by sqrt(d_k) instead of dividing by it", STEP,
            "The factor is 1/sqrt(d_k): divide, do not multiply.",
            lambda q, k, scale=None: _raw(q, k) * math.sqrt(q.shape[-1]) if scale is None else oracle(q, k, scale), key="multiplied_by_sqrt_d_k"),
    Mistake("attention_scores", WRONG_TRANSPOSE, STEP, WRONG_TRANSPOSE_FIX,
            lambda q, k, scale=None: torch.matmul(q.to(torch.float64), k.to(torch.float64).permute(
                *reversed(range(k.dim())))) * _scale(q, scale), key="wrong_axes_transposed"),
    Mistake("attention_scores", "`k.permute(0, 1, 3, 2)` assumes 4-D inputs", STEP,
            "permute names every axis, so it fits one number of axes only; (..., L, d_k) may have any number of "
            "leading axes. Transpose the last two axes by their negative indices: k.transpose(-2, -1) (or k.mT).",
            lambda q, k, scale=None: torch.matmul(q.to(torch.float64), k.to(torch.float64).permute(0, 1, 3, 2))
            * _scale(q, scale), key="permute_assumes_4d"),
    Mistake("attention_scores", "scores transposed (k @ qᵀ, shape (S, L))", STEP,
            "Each query is a row: q @ kᵀ gives (..., L, S), one row of scores per query.",
            lambda q, k, scale=None: oracle(k, q, _scale(q, scale)), key="scores_transposed"),
    Mistake("attention_scores", "`scale=0.0` treated as no scale given (`if not scale`)", STEP,
            "Test `scale is None`: 0.0 is a scale like any other and must be used as it is.",
            lambda q, k, scale=None: oracle(q, k, scale or None), key="zero_scale_as_none"),
    Mistake("attention_scores", "the `scale` argument is ignored", STEP,
            "An explicit scale replaces the default 1/sqrt(d_k): use it when it is not None.",
            lambda q, k, scale=None: oracle(q, k, None), key="scale_ignored"),
    Mistake("attention_scores", "divided by `scale` instead of multiplied by it", STEP,
            "`scale` is a factor: scores = q @ kᵀ * scale (the default is 1/sqrt(d_k)).",
            lambda q, k, scale=None: _raw(q, k) / scale if scale else oracle(q, k, scale), key="divided_by_scale"),
]


def scores(ex, q, k, scale=None, dtype=None):
    """Calls the learner's attention_scores and checks it against torch.matmul."""
    try:
        out = ex.attention_scores(q, k) if scale is None else ex.attention_scores(q, k, scale=scale)
    except SubmissionError as e:
        # A crash names a mistake only when that mistake's model raises the same error on these inputs
        # (`k.T` on a batched k usually fails in the matmul; `permute(0, 1, 3, 2)` on a 3-D k in the permute).
        known = crash_mistake(ex, e)
        if known is not None:
            fail(f"attention_scores(q {tuple(q.shape)}, k {tuple(k.shape)}) raised {e.message}\n  at "
                 f"{e.where}", mistake=known)
        raise
    close(out, oracle(q, k, scale), ex, dtype=dtype or q.dtype, magnitude=magnitude(q, k, scale))
    return out


def qk(rng, lead, L, S, d, dtype=torch.float32, scale=1.0):
    return randn(rng, *lead, L, d, dtype=dtype, scale=scale), randn(rng, *lead, S, d, dtype=dtype, scale=scale)


def lengths(rng, d, H=1):
    """L != S, with d_k, d_k², H·d_k, L and S all different: every wrong size changes the scale."""
    L = randint(rng, 2, 7)
    S = L + randint(rng, 1, 4)
    while len({d, d * d, H * d, L, S}) < (5 if H > 1 else 4):
        d += 1
    return L, S, d


@graded("shapes", 1)
def test_shape_l_by_s(ex, rng):
    """(..., L, d_k) and (..., S, d_k) give (..., L, S), keeping the dtype"""
    for lead, dtype in (((), torch.float64), ((randint(rng, 2, 4), randint(rng, 2, 4)), torch.float32)):
        L, S, d = lengths(rng, randint(rng, 2, 9), *lead[1:])
        if randint(rng, 0, 2):
            L, S = S, L
        q, k = qk(rng, lead, L, S, d, dtype)
        shaped(ex.attention_scores(q, k), (*lead, L, S), dtype, ex)


@graded("equivalence", 3)
def test_default_scale_is_one_over_sqrt_dk(ex, rng):
    """matches torch.matmul(q, kᵀ) / sqrt(d_k) on (B, H, L, d_k) heads, d_k the per-head size"""
    for dtype in (torch.float64, torch.float32):
        H = randint(rng, 2, 4)
        L, S, d = lengths(rng, randint(rng, 2, 9), H)
        scores(ex, *qk(rng, (randint(rng, 1, 3), H), L, S, d, dtype, scale=2.0))


@graded("equivalence", 2)
def test_transposes_only_the_last_two_axes(ex, rng):
    """batched 3-D and 4-D inputs: only the last two axes of k are transposed"""
    # B = S = d_k: the one batched shape where `k.T` runs and gives (B, L, S) with the wrong numbers.
    n = randint(rng, 2, 5)
    scores(ex, *qk(rng, (n,), n + randint(rng, 1, 3), n, n, torch.float64))
    B, H = randint(rng, 2, 4), randint(rng, 2, 4)
    L, S, d = lengths(rng, randint(rng, 2, 6), H)
    scores(ex, *qk(rng, (B, H), L, S, d, torch.float64))


@graded("equivalence", 2)
def test_explicit_scale_is_used_even_zero(ex, rng):
    """an explicit scale replaces the default, and scale=0.0 gives zeros"""
    L, S, d = lengths(rng, randint(rng, 2, 9))
    q, k = qk(rng, (randint(rng, 1, 3),), L, S, d, torch.float64)
    scores(ex, q, k, scale=0.25 + randint(rng, 0, 100) / 100)
    scores(ex, q, k, scale=0.0)


@graded("fp16", 1.5)
def test_half_precision(ex, rng):
    """float16 and bfloat16 scores keep the dtype, stay finite and round your own float64 scores"""
    for dtype in (torch.float16, torch.bfloat16):
        L, S, d = lengths(rng, randint(rng, 8, 33), 2)
        # |q·k| up to a few thousand: representable in float16 before and after scaling
        q, k = qk(rng, (randint(rng, 1, 3), 2), L, S, d, dtype, scale=8.0)
        half = ex.attention_scores(q, k)
        call = ex.last_call
        wide = ex.attention_scores(q.to(torch.float64), k.to(torch.float64))
        terms = ex.attention_scores(q.to(torch.float64).abs(), k.to(torch.float64).abs())   # the summed terms' size
        agrees(half, call, wide, f"in {dtype} should give your own float64 scores, rounded", ex, dtype=dtype, finite=True,
               magnitude=torch.as_tensor(terms).abs())


@graded("edge", 1)
def test_leading_axes_broadcast(ex, rng):
    """leading axes broadcast as in matmul: keys shared by the batch, one set of keys for every head"""
    B, H = randint(rng, 2, 4), randint(rng, 2, 4)
    L, S, d = lengths(rng, randint(rng, 2, 7), H)
    for q, k in ((randn(rng, B, H, L, d), randn(rng, 1, H, S, d)),                           # keys shared by the batch
                 (randn(rng, B, 1, L, d, dtype=torch.float64), randn(rng, S, d, dtype=torch.float64))):
        broadcast = ex.attention_scores(q, k)
        call = ex.last_call
        expanded = ex.attention_scores(q, k.expand(*q.shape[:-2], S, d))
        agrees(broadcast, call, expanded, "should equal your own scores with k expanded to q's leading axes", ex,
               dtype=q.dtype)


@graded("edge", 0.5, checks="inputs")
def test_inputs_left_alone(ex, rng):
    """q and k are not modified"""
    B, H = randint(rng, 2, 4), randint(rng, 2, 4)
    L, S, d = lengths(rng, randint(rng, 2, 7), H)
    unchanged_inputs(ex, "attention_scores", randn(rng, B, H, L, d), randn(rng, 1, H, S, d))


@graded("work", 0.6)
def test_no_python_loops(ex, rng):
    """dispatches as many tensor operations for 8 heads, batches or queries as for 2: no Python loop"""
    def call(B, H, L):
        ex.attention_scores(randn(rng, B, H, L, 4), randn(rng, B, H, L + 1, 4))
    no_loops(ex, call, {"B": (2, 8), "H": (2, 8), "L": (2, 8)})


@graded("rules", 0.5)
def test_no_fused_attention(ex, rng):
    """is built without a fused attention helper"""
    ex.attention_scores(randn(rng, 2, 3), randn(rng, 4, 3))
    rules_respected(ex)
