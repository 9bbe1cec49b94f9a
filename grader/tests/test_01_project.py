"""Hidden tests for exercise 01: linear projections of the tokens into queries, keys and values."""
import torch
import torch.nn.functional as F

from grader.checks import devices_kept
from grader.checks import (Mistake, choice, close, fail, graded, randint, randn, rounds_own_float64, rules_respected, shaped,
                           unchanged_inputs)
from grader.guards import LINEAR_LAYER

TITLE = "project Q, K, V"   # what the learner reads (README table: python -m grader.course sync)
CHECKS_DEVICES = True   # a test calls the code on the meta device (the zygote loads its kernels once)
FORBIDDEN = LINEAR_LAYER
STEP = "1. Project: linear layers for Q, K, V"


# -- the right answers (float64, PyTorch's own F.linear) --------------------------------------
def _64(t):
    return None if t is None else t.to(torch.float64)


def oracle_linear(x, weight, bias=None):
    return F.linear(_64(x), _64(weight), _64(bias))


def oracle_project(x, w_q, w_k, w_v, b_q=None, b_k=None, b_v=None, context=None):
    source = x if context is None else context
    return (oracle_linear(x, w_q, b_q), oracle_linear(source, w_k, b_k), oracle_linear(source, w_v, b_v))


def magnitude(x, weight, bias=None):
    """|x| @ |W|ᵀ + |b|: the size of the terms summed into each output (for fp16 tolerances)."""
    m = _64(x).abs() @ _64(weight).abs().T
    return m if bias is None else m + _64(bias).abs()


# -- known wrong ways -------------------------------------------------------------------------
def _no_transpose(x, weight, bias=None):
    out = _64(x) @ _64(weight)
    return out if bias is None else out + _64(bias)


def _project_with(lin, x, w_q, w_k, w_v, b_q=None, b_k=None, b_v=None, context=None):
    source = x if context is None else context
    return lin(x, w_q, b_q), lin(source, w_k, b_k), lin(source, w_v, b_v)


SAME_WEIGHT = "the same weight used for Q, K and V"
TRANSPOSE = "`x @ W` instead of `x @ Wᵀ` (weights are stored (out, in))"
NO_BIAS = "the bias is dropped"
NO_CONTEXT = "the cross-attention context is ignored (keys and values computed from x)"

MISTAKES = [
    Mistake("linear", TRANSPOSE, STEP,
            "Weights are stored (d_out, d_in), as in nn.Linear: one row per output feature. "
            "Multiply by the transpose: x @ weight.T (or weight.transpose(-2, -1)).",
            _no_transpose, key="weight_not_transposed"),
    Mistake("linear", NO_BIAS, STEP,
            "The bias is part of the projection: add it (it broadcasts over the leading axes) when it is given.",
            lambda x, weight, bias=None: oracle_linear(x, weight), key="bias_dropped"),
    Mistake("linear", "the bias is subtracted instead of added", STEP,
            "An affine map is x @ weight.T + bias.",
            lambda x, weight, bias=None: oracle_linear(x, weight, None if bias is None else -_64(bias)), key="bias_subtracted"),
    Mistake("project_qkv", SAME_WEIGHT, STEP,
            "Each of Q, K and V has its own projection: q uses w_q (and b_q), k uses w_k, v uses w_v. "
            "Sharing one matrix would make every query equal its key.",
            lambda x, w_q, w_k, w_v, b_q=None, b_k=None, b_v=None, context=None: _project_with(
                oracle_linear, x, w_q, w_q, w_q, b_q, b_q, b_q, context), key="same_weight_for_qkv"),
    Mistake("project_qkv", SAME_WEIGHT, STEP,
            "Each of Q, K and V has its own projection: q uses w_q (and b_q), k uses w_k, v uses w_v. "
            "Sharing one matrix would make every query equal its key.",
            lambda x, w_q, w_k, w_v, b_q=None, b_k=None, b_v=None, context=None: _project_with(
                oracle_linear, x, w_q, w_q, w_q, b_q, b_k, b_v, context), key="same_weight_for_qkv"),
    Mistake("project_qkv", "the key weight used for the values as well (v = k)", STEP,
            "Each of Q, K and V has its own projection: v uses w_v and b_v.",
            lambda x, w_q, w_k, w_v, b_q=None, b_k=None, b_v=None, context=None: _project_with(
                oracle_linear, x, w_q, w_k, w_k, b_q, b_k, b_k, context), key="value_uses_key_weight"),
    Mistake("project_qkv", TRANSPOSE, STEP,
            "Weights are stored (d_out, d_in), as in nn.Linear: one row per output feature. "
            "Multiply by the transpose: x @ weight.T.",
            lambda *a, **k: _project_with(_no_transpose, *a, **k), key="weight_not_transposed"),
    Mistake("project_qkv", NO_BIAS, STEP,
            "The bias is part of the projection: add b_q, b_k and b_v to their projections when they are given.",
            lambda *a, **k: _project_with(lambda x, w, b=None: oracle_linear(x, w), *a, **k), key="bias_dropped"),
    Mistake("project_qkv", NO_CONTEXT, STEP,
            "In cross-attention the queries come from x, while the keys and values come from `context` "
            "(B, S, D) when it is given.",
            lambda x, w_q, w_k, w_v, b_q=None, b_k=None, b_v=None, context=None: oracle_project(
                x, w_q, w_k, w_v, b_q, b_k, b_v), key="context_ignored"),
    Mistake("project_qkv", "the queries computed from the context too", STEP,
            "Only the keys and values come from `context`; the queries always come from x.",
            lambda x, w_q, w_k, w_v, b_q=None, b_k=None, b_v=None, context=None: oracle_project(
                x if context is None else context, w_q, w_k, w_v, b_q, b_k, b_v), key="queries_from_context"),
]


def weights(rng, D, dtype, bias=True, scale=0.3):
    ws = [randn(rng, D, D, dtype=dtype, scale=scale) for _ in range(3)]
    bs = [randn(rng, D, dtype=dtype) if bias else None for _ in range(3)]
    return ws, bs


def check_project(ex, out, args, kwargs, dtype):
    expected = oracle_project(*args, **kwargs)
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        fail(f"project_qkv should return a tuple (q, k, v), but returned {type(out).__name__}"
             + (f" of {len(out)}" if isinstance(out, (tuple, list)) else ""))
    x, ws = args[0], args[1:4]
    bs = [kwargs.get(n) for n in ("b_q", "b_k", "b_v")]
    sources = [x] + [kwargs.get("context") if kwargs.get("context") is not None else x] * 2
    for i, name in enumerate("qkv"):
        close(out[i], expected[i], ex, dtype=dtype, part=i, what=name,
              magnitude=magnitude(sources[i], ws[i], bs[i]))


# -- tests ------------------------------------------------------------------------------------
@graded("shapes", 1)
def test_linear_keeps_leading_axes_and_dtype(ex, rng):
    """linear maps (..., d_in) to (..., d_out) for any leading axes, keeping the dtype"""
    for lead, dtype in (((randint(rng, 2, 5),), torch.float64),
                        ((randint(rng, 1, 4), randint(rng, 2, 5), randint(rng, 1, 4)), torch.float32),
                        ((), torch.float64)):
        d_in, d_out = randint(rng, 2, 9), randint(rng, 2, 9)
        x = randn(rng, *lead, d_in, dtype=dtype)
        w = randn(rng, d_out, d_in, dtype=dtype, scale=0.5)
        b = randn(rng, d_out, dtype=dtype)
        shaped(ex.linear(x, w, b), (*lead, d_out), dtype, ex)


@graded("equivalence", 2)
def test_linear_matches_nn_linear(ex, rng):
    """linear matches torch.nn.functional.linear (weight (d_out, d_in)), with and without a bias"""
    for dtype, bias in ((torch.float64, True), (torch.float32, False), (torch.float32, True)):
        d = randint(rng, 3, 9)
        d_out = choice(rng, (d, d + randint(rng, 1, 4)))   # square weights too: x @ W has the right shape
        x = randn(rng, randint(rng, 1, 4), randint(rng, 2, 6), d, dtype=dtype)
        w = randn(rng, d_out, d, dtype=dtype, scale=0.5)
        b = randn(rng, d_out, dtype=dtype) if bias else None
        close(ex.linear(x, w, b), oracle_linear(x, w, b), ex, dtype=dtype, magnitude=magnitude(x, w, b))


@graded("equivalence", 2.5)
def test_self_attention_projections(ex, rng):
    """project_qkv gives q, k, v = three separate nn.Linear projections of x, each with its own bias"""
    for dtype in (torch.float64, torch.float32):
        B, L, D = randint(rng, 2, 4), randint(rng, 2, 7), randint(rng, 3, 9)
        x = randn(rng, B, L, D, dtype=dtype)
        ws, bs = weights(rng, D, dtype)
        kwargs = dict(b_q=bs[0], b_k=bs[1], b_v=bs[2])
        check_project(ex, ex.project_qkv(x, *ws, **kwargs), (x, *ws), kwargs, dtype)


@graded("equivalence", 2)
def test_cross_attention_uses_the_context(ex, rng):
    """cross-attention: q comes from x (B, L, D), k and v from the context (B, S, D), L != S"""
    B, L, D = randint(rng, 1, 4), randint(rng, 2, 6), randint(rng, 3, 9)
    S = L + randint(rng, 1, 5)
    if randint(rng, 0, 2):
        L, S = S, L                            # sometimes more queries than keys
    x = randn(rng, B, L, D, dtype=torch.float32)
    context = randn(rng, B, S, D, dtype=torch.float32)
    ws, bs = weights(rng, D, torch.float32)
    kwargs = dict(b_q=bs[0], b_k=bs[1], b_v=bs[2], context=context)
    check_project(ex, ex.project_qkv(x, *ws, **kwargs), (x, *ws), kwargs, torch.float32)


@graded("fp16", 1.5)
def test_half_precision(ex, rng):
    """keeps float16 and bfloat16, accurate to the dtype (products may accumulate in it)"""
    for dtype in (torch.float16, torch.bfloat16):
        B, L, D = randint(rng, 1, 4), randint(rng, 2, 6), randint(rng, 4, 17)
        x = randn(rng, B, L, D, dtype=dtype)
        ws, bs = weights(rng, D, dtype)
        rounds_own_float64(ex, "project_qkv", x, *ws, b_q=bs[0], b_k=bs[1], b_v=bs[2], dtype=dtype,
                           magnitude=[magnitude(x, w, b) for w, b in zip(ws, bs)])
        rounds_own_float64(ex, "project_qkv", x, *ws, dtype=dtype, magnitude=[magnitude(x, w) for w in ws])   # no bias


@graded("edge", 1)
def test_biases_optional_one_by_one(ex, rng):
    """biases are optional one by one: all three, none, or only the value bias"""
    B, L, S, D = randint(rng, 1, 3), randint(rng, 1, 5), randint(rng, 1, 5), randint(rng, 2, 8)
    x = randn(rng, B, L, D, dtype=torch.float64)
    context = randn(rng, B, S, D, dtype=torch.float64)
    ws, bs = weights(rng, D, torch.float64)
    for kwargs in (dict(b_q=bs[0], b_k=bs[1], b_v=bs[2], context=context), {}, dict(b_v=bs[2])):
        check_project(ex, ex.project_qkv(x, *ws, **kwargs), (x, *ws), kwargs, torch.float64)


@graded("edge", 0.5, checks="inputs")
def test_inputs_left_alone(ex, rng):
    """x, context, the weights and the biases are not modified"""
    B, L, S, D = randint(rng, 1, 3), randint(rng, 1, 5), randint(rng, 1, 5), randint(rng, 2, 8)
    x = randn(rng, B, L, D, dtype=torch.float64)
    context = randn(rng, B, S, D, dtype=torch.float64)
    ws, bs = weights(rng, D, torch.float64)
    kwargs = dict(b_q=bs[0], b_k=bs[1], b_v=bs[2], context=context)
    unchanged_inputs(ex, "project_qkv", x, *ws, **kwargs)


@graded("rules", 0.5)
def test_no_library_linear(ex, rng):
    """is built without torch.nn.functional.linear or torch.nn.Linear"""
    ex.linear(randn(rng, 2, 3), randn(rng, 4, 3))
    rules_respected(ex)


@graded("edge", 0.25, checks="device")
def test_results_live_on_the_inputs_device(ex, rng):
    """q, k and v live on the inputs' device, with bias=None too (checked on the meta device)"""
    B, L, D = 2, 3, 8               # fixed, as the point is: the same on every seed
    x, w = randn(rng, B, L, D), [randn(rng, D, D) for _ in range(3)]
    devices_kept(ex, "project_qkv", x, *w)
