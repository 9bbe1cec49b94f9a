"""Hidden tests for exercise 15: attention's backward pass by hand, in NumPy."""
import math

import numpy as np
import torch

from grader.checks import Mistake, agrees, close, fail, graded, randint, rules_respected, shaped
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


PARTS = ("out", "dq", "dk", "dv")


def results(ex, q, k, v, dout, causal=False):
    """Forward then backward in the sandbox: out, dq, dk, dv (each a NumPy array), and the inputs after."""
    got = ex.run(forward_backward, q, k, v, dout, causal)
    for i, name in enumerate(PARTS):
        if not isinstance(got[i], np.ndarray):
            fail(f"{name} should be a NumPy array (np.ndarray), but your code returned {type(got[i]).__name__}.",
                 on="type")
    return got


def check(ex, q, k, v, dout, causal=False, parts=PARTS):
    """Runs forward then backward in the sandbox; the named parts against autograd."""
    got = results(ex, q, k, v, dout, causal)
    call = ex.last_call
    want = oracle(q, k, v, dout, causal)
    for i, name in enumerate(PARTS):
        if name in parts:
            ex.last_call = call
            close(got[i], want[i], ex, dtype=torch.float64, part=i, what=name)
    return got


def visible(L, S):
    """(L, S) bool: query i sees key j when j <= i + (S − L) (bottom-right)."""
    return torch.ones(L, S, dtype=torch.bool).tril(S - L)


# -- tests ------------------------------------------------------------------------------------
@graded("shapes", 1)
def test_arrays_shaped_like_the_inputs(ex, rng):
    """returns float64 NumPy arrays: out (..., L, d_v) and dq, dk, dv shaped like q, k, v"""
    L = randint(rng, 2, 6)
    q, k, v, dout = arrays(rng, (randint(rng, 1, 3),), L, L + randint(rng, 1, 4), randint(rng, 2, 6), randint(rng, 2, 6))
    got = results(ex, q, k, v, dout)
    for name, part, like in zip(PARTS, got, (dout, q, k, v)):
        shaped(part, like.shape, torch.float64, ex, what=name)


@graded("equivalence", 1)
def test_forward_matches_attention(ex, rng):
    """out matches softmax(q kᵀ / sqrt(d_k)) v, L = S and L ≠ S"""
    L = randint(rng, 3, 8)
    check(ex, *arrays(rng, (2,), L, L, randint(rng, 2, 9), randint(rng, 2, 9)), parts=("out",))
    check(ex, *arrays(rng, (1, 2), randint(rng, 2, 6), randint(rng, 6, 10), randint(rng, 2, 9), randint(rng, 2, 9)),
          parts=("out",))


def _gradient(ex, rng, name):
    L = randint(rng, 3, 8)
    check(ex, *arrays(rng, (2,), L, L, randint(rng, 2, 9), randint(rng, 2, 9)), parts=(name,))
    check(ex, *arrays(rng, (1, 2), randint(rng, 2, 6), randint(rng, 6, 10), randint(rng, 2, 9), randint(rng, 2, 9)),
          parts=(name,))


@graded("equivalence", 1)
def test_dq_matches_autograd(ex, rng):
    """dq matches torch autograd (float64), L = S and L ≠ S"""
    _gradient(ex, rng, "dq")


@graded("equivalence", 1)
def test_dk_matches_autograd(ex, rng):
    """dk matches torch autograd (float64), L = S and L ≠ S"""
    _gradient(ex, rng, "dk")


@graded("equivalence", 1)
def test_dv_matches_autograd(ex, rng):
    """dv matches torch autograd (float64), L = S and L ≠ S"""
    _gradient(ex, rng, "dv")


@graded("equivalence", 1.5)
def test_causal_gradients(ex, rng):
    """causal out and gradients match autograd, for L = S and for L < S (bottom-right)"""
    L = randint(rng, 3, 8)
    check(ex, *arrays(rng, (2,), L, L, 4, 5), causal=True)
    L = randint(rng, 2, 5)
    check(ex, *arrays(rng, (2,), L, L + randint(rng, 2, 5), 6, 3), causal=True)


def _rows_changed(a, b):
    """(L,) bool: the rows (second-last axis) where a and b differ, over every other axis."""
    diff = np.abs(np.asarray(a) - np.asarray(b)) > 1e-9 * (1 + np.abs(np.asarray(b)))
    return torch.from_numpy(diff.reshape(-1, *diff.shape[-2:]).any(axis=(0, 2)))


@graded("masking", 1.5)
def test_causal_sees_exactly_the_keys_up_to_its_own(ex, rng):
    """causal: query i depends on keys up to i + (S − L) only, and key j only on the queries that see it"""
    L = randint(rng, 3, 6)
    S = L + randint(rng, 1, 4)
    seen = visible(L, S)
    q, k, v, dout = arrays(rng, (2,), L, S, 4, 3)
    base = results(ex, q, k, v, dout, causal=True)
    for c in range(S - L + 1, S):       # change the keys and values from position c on
        k2, v2 = k.copy(), v.copy()
        k2[..., c:, :] += 1.0
        v2[..., c:, :] -= 1.0
        got = results(ex, q, k2, v2, dout, causal=True)
        should = seen[:, c:].any(-1)
        for i, name in ((0, "out"), (1, "dq")):
            changed = _rows_changed(got[i], base[i])
            if (changed & ~should).any():
                fail(f"With causal=True, L = {L}, S = {S}: changing the keys and values from position {c} on changed "
                     f"{name} at queries {changed.logical_and(~should).nonzero().flatten().tolist()}, which must not "
                     f"see them (query i sees keys j <= i + (S − L)).")
        if (should & ~_rows_changed(got[0], base[0])).any():
            fail(f"With causal=True, L = {L}, S = {S}: changing the keys and values from position {c} on left out "
                 f"unchanged at queries {should.logical_and(~_rows_changed(got[0], base[0])).nonzero().flatten().tolist()}, "
                 f"which should see them: the mask is bottom-right aligned (query i sees keys j <= i + (S − L)).")
    for r in range(1, L):               # change the queries and output gradients before row r
        q2, dout2 = q.copy(), dout.copy()
        q2[..., :r, :] += 1.0
        dout2[..., :r, :] -= 1.0
        got = results(ex, q2, k, v, dout2, causal=True)
        should = seen[:r].any(0)
        for i, name in ((2, "dk"), (3, "dv")):
            changed = _rows_changed(got[i], base[i])
            if (changed & ~should).any():
                fail(f"With causal=True, L = {L}, S = {S}: changing the queries and dout of queries 0..{r - 1} changed "
                     f"{name} at keys {changed.logical_and(~should).nonzero().flatten().tolist()}, which none of them "
                     f"sees.")


@graded("edge", 0.75)
def test_any_number_of_leading_dimensions(ex, rng):
    """any number of leading dimensions: three, one or none give the same numbers"""
    L = randint(rng, 2, 5)
    inputs = arrays(rng, (2, 3, 2), L, L + randint(rng, 1, 3), 3, 4)
    three = results(ex, *inputs)
    call = ex.last_call
    one = results(ex, *(t.reshape(12, *t.shape[3:]) for t in inputs))
    none = results(ex, *(t[1, 2, 0] for t in inputs))
    for i, name in enumerate(PARTS):
        shaped(three[i], (2, 3, 2) + one[i].shape[1:], torch.float64, ex, what=name)
        agrees(three[i], call, one[i].reshape(three[i].shape), f"should give, in {name}, the numbers of your own "
               "result on the same inputs with the three leading axes flattened into one", ex, dtype=torch.float64)
        agrees(three[i][1, 2, 0], call, none[i], f"should give, in {name}, the numbers of your own result on one "
               "item without leading axes", ex, dtype=torch.float64)


@graded("edge", 0.75)
def test_single_query_or_single_key(ex, rng):
    """a single query (causal) or a single key gives the right gradients"""
    check(ex, *arrays(rng, (3,), 1, randint(rng, 2, 6), 4, 2), causal=True)
    check(ex, *arrays(rng, (), randint(rng, 2, 5), 1, 5, 3))


@graded("edge", 1)
def test_large_scores_stay_finite(ex, rng):
    """scores past 1000: the softmax subtracts the row max, nothing overflows"""
    q, k, v, dout = arrays(rng, (2,), 4, 5, 8, 3)
    for causal in (False, True):
        got = results(ex, q * 30, k * 30, v, dout, causal)
        for name, part in zip(PARTS, got):
            bad = ~np.isfinite(np.asarray(part, dtype=np.float64))
            if bad.any():
                fail(f"With scores past 1000 (causal={causal}), {name} holds {int(bad.sum())} NaN or inf entries. "
                     "Subtract each row's max from the scores before np.exp: every exponent is then at most 0.",
                     mistake=next(m for m in MISTAKES if m.key == "no_max_subtracted"))
        if not causal:      # causal alignment is the masking tests' (a peaked softmax shows it only by chance)
            check(ex, q * 30, k * 30, v, dout, causal, parts=("out",))


@graded("edge", 0.5)
def test_inputs_left_alone(ex, rng):
    """q, k, v and dout are not modified"""
    q, k, v, dout = arrays(rng, (2,), 4, 5, 3, 2)
    got = results(ex, q, k, v, dout, causal=True)
    for name, before, after in zip(("q", "k", "v", "dout"), (q, k, v, dout), got[4]):
        if not np.array_equal(before, after):
            fail(f"Your code modified its input `{name}` in place: the backward pass needs the inputs as they were. "
                 "Work on new arrays (no `x -= ...`, `x[...] = ...`, `out=` on an input).")


@graded("rules", 2)
def test_numpy_only(ex, rng):
    """uses NumPy alone: no torch, no autograd library"""
    results(ex, *arrays(rng, (1,), 3, 3, 2, 2))
    rules_respected(ex)     # FORBIDDEN_IMPORTS: torch and every autograd library, however imported
