"""Hidden tests for exercise 15: attention's backward pass by hand, in NumPy."""
import math

import numpy as np
import torch

from grader.checks import Mistake, close, fail, graded, randint, rules_respected
from grader.guards import AUTOGRAD_CALLS, AUTOGRAD_LIBRARIES

TITLE = "the backward pass, in NumPy"   # what the learner reads (README table: python -m grader.course sync)
STEP = "follow-up: the backward pass, in NumPy"
# Importing an autograd library, or reaching automatic differentiation at run time, scores 0.
FORBIDDEN = AUTOGRAD_CALLS
FORBIDDEN_IMPORTS = AUTOGRAD_LIBRARIES


# -- the probe: forward, then backward, inside the sandbox -------------------------------------
def forward_backward(module, q, k, v, dout, causal=False):
    out, cache = module.attention_forward(q, k, v, causal=causal)
    dq, dk, dv = module.attention_backward(dout, cache)
    return out, dq, dk, dv, (q, k, v, dout)     # the inputs as they are afterwards


# -- the right answers: torch autograd in float64, in the grader's process ----------------------
def _scores(q, k, causal):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        L, S = s.shape[-2:]
        s = s.masked_fill(torch.ones(L, S, dtype=torch.bool).triu(S - L + 1), -math.inf)
    return s


def oracle(q, k, v, dout, causal=False):
    q, k, v = (torch.from_numpy(np.array(t, dtype=np.float64)).requires_grad_() for t in (q, k, v))
    out = torch.softmax(_scores(q, k, causal), dim=-1) @ v
    # A scalar loss sum(out ⊙ dout) has the same gradients as backward(dout), and spares autograd's first
    # tensor-gradient call a second of imports (torch.fx's symbolic shapes).
    loss = (out * torch.from_numpy(np.asarray(dout, dtype=np.float64))).sum()
    dq, dk, dv = torch.autograd.grad(loss, (q, k, v))
    return out.detach(), dq, dk, dv


def by_hand(q, k, v, dout, causal=False, rowsum=True, scale_dq=True, scale_dk=True, dv_no_transpose=False,
            stable=True):
    """What a backward with one known slip returns, derived by torch.autograd (no backward is written out
    here): autograd differentiates a forward changed where the slip changes it, and a missing scale is
    taken back out of autograd's gradient."""
    qt, kt, vt = (torch.from_numpy(np.array(t, dtype=np.float64)).requires_grad_() for t in (q, k, v))
    d = torch.from_numpy(np.asarray(dout, dtype=np.float64))
    s = _scores(qt, kt, causal)
    if stable and rowsum:
        p = torch.softmax(s, dim=-1)
    else:
        e = torch.exp(s - s.amax(-1, keepdim=True).detach()) if stable else torch.exp(s)
        z = e.sum(-1, keepdim=True)
        p = e / (z if rowsum else z.detach())    # a constant denominator drops the −p pᵀ part of the Jacobian
    out = p @ vt
    dq, dk, dv = torch.autograd.grad((out * d).sum(), (qt, kt, vt))
    unscale = math.sqrt(q.shape[-1])
    if not scale_dq:
        dq = dq * unscale
    if not scale_dk:
        dk = dk * unscale
    if dv_no_transpose:
        dv = p.detach() @ d
    return out.detach(), dq, dk, dv


def _slip(**slip):
    return lambda q, k, v, dout, causal=False: by_hand(q, k, v, dout, causal, **slip)


MISSING_ROWSUM = "softmax Jacobian wrong (missing the row-sum term)"
NO_SCALE = "scale missing from dQ or dK"
ROWSUM_FIX = ("The softmax Jacobian is diag(p) − p pᵀ per row: dZ = P ⊙ (dP − rowsum(dP ⊙ P)), the row sum taken "
              "over keys with keepdims. P ⊙ dP alone drops the −p pᵀ part.")
SCALE_FIX = ("The scores are Z = Q Kᵀ · scale, so the chain rule passes the scale on: dQ = dZ K · scale and "
             "dK = dZᵀ Q · scale, with scale = 1/sqrt(d_k).")

MISTAKES = [
    Mistake("forward_backward", MISSING_ROWSUM, STEP, ROWSUM_FIX, _slip(rowsum=False), key="no_rowsum_term"),
    Mistake("forward_backward", NO_SCALE, STEP, SCALE_FIX, _slip(scale_dq=False), key="gradient_scale_missing"),
    Mistake("forward_backward", NO_SCALE, STEP, SCALE_FIX, _slip(scale_dk=False), key="gradient_scale_missing"),
    Mistake("forward_backward", NO_SCALE, STEP, SCALE_FIX, _slip(scale_dq=False, scale_dk=False), key="gradient_scale_missing"),
    Mistake("forward_backward", "dV computed as P @ dout instead of Pᵀ @ dout", STEP,
            "O = P V, so dV = Pᵀ dO: (S, L) @ (L, d_v) gives one gradient row per key. P @ dout only has the right "
            "shape when L == S.", _slip(dv_no_transpose=True), key="dv_not_transposed"),
    Mistake("forward_backward", "causal mask aligned top-left when L < S", STEP,
            "Causal alignment is bottom-right, as in exercise 04: query i sees key j when j <= i + (S − L).",
            lambda q, k, v, dout, causal=False: oracle(q, k, v, dout, False) if not causal else _top_left(q, k, v, dout), key="causal_top_left"),
    Mistake("forward_backward", "the row max is not subtracted before exp, so large scores overflow to inf and NaN",
            STEP, "Subtract each row's max from the scores before np.exp: softmax is unchanged by the shift, and "
            "every exponent is then at most 0.", _slip(stable=False), key="no_max_subtracted"),
    Mistake("forward_backward", "forward scores not scaled by 1/sqrt(d_k)", STEP,
            "The scores are Z = Q Kᵀ / sqrt(d_k) in the forward pass, and the same scale flows back into dQ and dK.",
            lambda q, k, v, dout, causal=False: oracle(q * math.sqrt(q.shape[-1]), k, v, dout, causal), key="forward_not_scaled"),
]


def _top_left(q, k, v, dout):
    qt, kt, vt = (torch.from_numpy(np.array(t, dtype=np.float64)).requires_grad_() for t in (q, k, v))
    s = qt @ kt.transpose(-2, -1) / math.sqrt(q.shape[-1])
    L, S = s.shape[-2:]
    out = torch.softmax(s.masked_fill(torch.ones(L, S, dtype=torch.bool).triu(1), -math.inf), -1) @ vt
    loss = (out * torch.from_numpy(np.asarray(dout, dtype=np.float64))).sum()
    return (out.detach(), *torch.autograd.grad(loss, (qt, kt, vt)))


def arrays(rng, lead, L, S, d_k, d_v):
    def make(*shape):
        return torch.randn(*shape, generator=rng, dtype=torch.float64).numpy()
    return make(*lead, L, d_k), make(*lead, S, d_k), make(*lead, S, d_v), make(*lead, L, d_v)


def check(ex, q, k, v, dout, causal=False):
    """Runs forward then backward in the sandbox; out and every gradient against autograd."""
    got = ex.run(forward_backward, q, k, v, dout, causal)
    want = oracle(q, k, v, dout, causal)
    for i, name in enumerate(("out", "dq", "dk", "dv")):
        if not isinstance(got[i], np.ndarray):
            fail(f"{name} should be a NumPy array (np.ndarray), but your code returned {type(got[i]).__name__}.")
        close(got[i], want[i], ex, dtype=torch.float64, part=i, what=name)
    for name, before, after in zip(("q", "k", "v", "dout"), (q, k, v, dout), got[4]):
        if not np.array_equal(before, after):
            fail(f"Your code modified its input `{name}` in place: the backward pass needs the inputs as they were. "
                 "Work on new arrays (no `x -= ...`, `x[...] = ...`, `out=` on an input).")


# -- tests ------------------------------------------------------------------------------------
@graded("shapes", 1)
def test_arrays_shaped_like_the_inputs(ex, rng):
    """returns float64 NumPy arrays: out (..., L, d_v) and dq, dk, dv shaped like q, k, v"""
    check(ex, *arrays(rng, (randint(rng, 1, 3),), randint(rng, 2, 6), randint(rng, 2, 7), randint(rng, 2, 6),
                      randint(rng, 2, 6)))


@graded("equivalence", 3)
def test_gradients_match_autograd(ex, rng):
    """dq, dk and dv match torch autograd (float64), L = S and L ≠ S"""
    L = randint(rng, 3, 8)
    check(ex, *arrays(rng, (2,), L, L, randint(rng, 2, 9), randint(rng, 2, 9)))
    check(ex, *arrays(rng, (1, 2), randint(rng, 2, 6), randint(rng, 6, 10), randint(rng, 2, 9), randint(rng, 2, 9)))


@graded("masking", 2.5)
def test_causal_gradients(ex, rng):
    """causal gradients match autograd, for L = S and for L < S (bottom-right)"""
    L = randint(rng, 3, 8)
    check(ex, *arrays(rng, (2,), L, L, 4, 5), causal=True)
    L = randint(rng, 2, 5)
    check(ex, *arrays(rng, (2,), L, L + randint(rng, 2, 5), 6, 3), causal=True)


@graded("edge", 0.75)
def test_any_number_of_leading_dimensions(ex, rng):
    """any number of leading dimensions: three, one or none"""
    check(ex, *arrays(rng, (2, 3, 2), randint(rng, 2, 5), randint(rng, 2, 5), 3, 4))
    check(ex, *arrays(rng, (3,), randint(rng, 2, 5), randint(rng, 2, 6), 4, 2))
    check(ex, *arrays(rng, (), randint(rng, 2, 5), randint(rng, 2, 5), 5, 3))


@graded("edge", 0.75)
def test_single_query_or_single_key(ex, rng):
    """a single query (causal) or a single key gives the right gradients"""
    check(ex, *arrays(rng, (3,), 1, randint(rng, 2, 6), 4, 2), causal=True)
    check(ex, *arrays(rng, (), randint(rng, 2, 5), 1, 5, 3))


@graded("edge", 1)
def test_large_scores_stay_finite(ex, rng):
    """scores past 1000: the softmax subtracts the row max, nothing overflows"""
    q, k, v, dout = arrays(rng, (2,), 4, 5, 8, 3)
    check(ex, q * 30, k * 30, v, dout)
    check(ex, q * 30, k * 30, v, dout, causal=True)


@graded("rules", 2)
def test_numpy_only(ex, rng):
    """uses NumPy alone: no torch, no autograd library"""
    check(ex, *arrays(rng, (1,), 3, 3, 2, 2))
    rules_respected(ex)     # FORBIDDEN_IMPORTS: torch and every autograd library, however imported
