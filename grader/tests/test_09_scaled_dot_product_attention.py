"""Hidden tests for exercise 09: scaled dot-product attention (checklist steps 3 to 6 together)."""
import math

import torch
import torch.nn.functional as F

from grader.checks import no_loops
from grader.checks import (TOLERANCE, _known_mistake, Attending, Mistake, agrees, attention_with_key_weights, broadcast_shape, choice, close,
                           describe_call, fail, graded, keys_hidden, randint, randn, rounds_own_float64,
                           rules_respected, shaped, unchanged_inputs)

TITLE = "scaled dot-product attention"   # what the learner reads (README table: python -m grader.course sync)
STEP_SCORES = "3. Scores: Q @ K^T / sqrt(d_k)"
STEP_MASK = "4. Mask before softmax"
STEP_SOFTMAX = "5. Stable softmax over the key axis"
STEP_VALUES = "6. Weight the values"
STEPS = "3-6. Scaled dot-product attention"
HALF = (torch.float16, torch.bfloat16)


def _64(t):
    return None if t is None else t.to(torch.float64)


# -- the right answer: PyTorch's own fused attention, in float64 -------------------------------
def oracle(q, k, v, mask=None, scale=None):
    """(out, probs) in float64. PyTorch's bool mask means "may attend", ours "blocked": it is inverted.
    Rows that see no key come out as zeros from SDPA (torch 2.13, CPU) and NaN in the probabilities here;
    the tests only ask those to be finite."""
    q, k, v = _64(q), _64(k), _64(v)
    s = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else ~mask, scale=s)
    scores = (q @ k.transpose(-2, -1)) * s
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    return out, torch.softmax(scores, dim=-1)


# -- known wrong ways, written out in float64 ---------------------------------------------------
def attend(q, k, v, mask=None, scale=None, *, fill="min", after=False, dim=-1, values="v", rule=None,
           invert=False, naive=False, late_scale=False):
    q, k, v = _64(q), _64(k), _64(v)
    s = rule(q, k, v, scale) if rule else (1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale))
    scores = (q @ k.transpose(-2, -1)) * (1.0 if late_scale else s)
    if mask is not None and invert:
        mask = ~mask
    if mask is not None and not after:
        value = {"min": torch.finfo(torch.float64).min, "-inf": float("-inf"), "zero": 0.0}[fill]
        scores = scores.masked_fill(mask, value)
    if late_scale:
        scores = scores * s
    if naive:
        e = scores.exp()
        probs = e / e.sum(dim, keepdim=True)
    else:
        probs = torch.softmax(scores, dim=dim)
    if mask is not None and after:
        probs = probs.masked_fill(mask, 0.0)
    return probs @ (v if values == "v" else k), probs


FLOAT32 = Mistake(
    "scaled_dot_product_attention", "computes in float32 and returns float32 for float16 input", STEP_SOFTMAX,
    "Computing the softmax in float32 is right, but cast the result back (.to(q.dtype)) so that out and probs "
    "keep the input's dtype.",
    lambda q, k, v, mask=None, scale=None: tuple(t.to(torch.float32) for t in attend(q, k, v, mask, scale)), key="float32_result")

MISTAKES = [
    Mistake("scaled_dot_product_attention", "probabilities multiplied with K instead of V", STEP_VALUES,
            "The output mixes the values: out = probs @ v, not probs @ k.",
            lambda q, k, v, mask=None, scale=None: attend(q, k, v, mask, scale, values="k"), key="probs_times_k"),
    Mistake("scaled_dot_product_attention", "mask applied after softmax (probabilities zeroed, not renormalised)",
            STEP_MASK,
            "Mask the scores before the softmax (masked_fill with torch.finfo(dtype).min): zeroing probabilities "
            "afterwards leaves rows that no longer sum to 1.",
            lambda q, k, v, mask=None, scale=None: attend(q, k, v, mask, scale, after=True), key="mask_after_softmax"),
    Mistake("scaled_dot_product_attention", "the scale is applied after the mask fill", STEP_MASK,
            "Scale the scores first, then fill the blocked ones: scale=0 turns a filled score back into 0 (the "
            "blocked key gets weight again), and a scale above 1 turns finfo(dtype).min into -inf (a fully masked "
            "row becomes NaN).",
            lambda q, k, v, mask=None, scale=None: attend(q, k, v, mask, scale, late_scale=True), key="scale_after_mask"),
    Mistake("scaled_dot_product_attention", "a fully masked row turns NaN", STEP_MASK,
            "A query whose keys are all blocked must stay finite: fill blocked scores with torch.finfo(dtype).min, "
            "not -inf (nor -1e9, which float16 cannot hold: masked_fill raises, a cast gives -inf), so that such a row gets uniform weights instead of "
            "exp(-inf - (-inf)) = NaN.",
            lambda q, k, v, mask=None, scale=None: attend(q, k, v, mask, scale, fill="-inf"), key="nan_on_masked_row"),
    Mistake("scaled_dot_product_attention", "no scaling by 1/sqrt(d_k)", STEP_SCORES,
            "Multiply the scores by 1/sqrt(d_k) when scale is None: the dot product's variance grows with d_k, "
            "and unscaled scores push the softmax into saturation.",
            lambda q, k, v, mask=None, scale=None: attend(q, k, v, mask, scale, rule=lambda q, k, v, s: 1.0), key="no_scaling"),
    Mistake("scaled_dot_product_attention", "softmax over the query axis instead of the key axis", STEP_SOFTMAX,
            "Normalise over the last axis (dim=-1, the keys): each query distributes its attention over the keys.",
            lambda q, k, v, mask=None, scale=None: attend(q, k, v, mask, scale, dim=-2), key="softmax_over_queries"),
    Mistake("scaled_dot_product_attention", "scale=0.0 treated as None (`scale or 1/sqrt(d_k)`)", STEP_SCORES,
            "Test `scale is None`, not the truth of scale: 0.0 is a valid scale (uniform attention).",
            lambda q, k, v, mask=None, scale=None: attend(q, k, v, mask, scale or None), key="zero_scale_as_none"),
    Mistake("scaled_dot_product_attention", "the `scale` argument is ignored", STEP_SCORES,
            "An explicit scale replaces the default 1/sqrt(d_k).",
            lambda q, k, v, mask=None, scale=None: attend(q, k, v, mask, None), key="scale_ignored"),
    Mistake("scaled_dot_product_attention", "scaled by 1/d_k instead of 1/sqrt(d_k)", STEP_SCORES,
            "The factor is 1/sqrt(d_k): take the square root of the per-head key size.",
            lambda q, k, v, mask=None, scale=None: attend(
                q, k, v, mask, scale, rule=lambda q, k, v, s: 1.0 / q.shape[-1] if s is None else float(s)), key="scaled_by_d_k"),
    Mistake("scaled_dot_product_attention", "scaled by 1/sqrt(d_v) instead of 1/sqrt(d_k)", STEP_SCORES,
            "The factor comes from the key size d_k (q's last axis), not the value size.",
            lambda q, k, v, mask=None, scale=None: attend(
                q, k, v, mask, scale, rule=lambda q, k, v, s: 1.0 / math.sqrt(v.shape[-1]) if s is None else float(s)), key="scaled_by_d_v"),
    Mistake("scaled_dot_product_attention", "the mask is inverted (True treated as attend)", STEP_MASK,
            "True means blocked, as in scores.masked_fill(mask, ...): fill where the mask is True.",
            lambda q, k, v, mask=None, scale=None: attend(q, k, v, mask, scale, invert=True), key="mask_inverted"),
    Mistake("scaled_dot_product_attention", "masked scores filled with 0 instead of a very negative value", STEP_MASK,
            "A score of 0 still gets weight exp(0 - max). Fill with torch.finfo(dtype).min so blocked keys get none.",
            lambda q, k, v, mask=None, scale=None: attend(q, k, v, mask, scale, fill="zero"), key="fill_zero"),
    Mistake("scaled_dot_product_attention", "softmax without subtracting the row max (large logits overflow)",
            STEP_SOFTMAX,
            "Use torch.softmax, or subtract the row max before exp: exp of a large score is inf, and inf/inf is NaN.",
            lambda q, k, v, mask=None, scale=None: attend(q, k, v, mask, scale, naive=True), key="no_max_subtracted"),
    FLOAT32,
]


# -- checking -----------------------------------------------------------------------------------
def magnitudes(q, k, v, mask, scale, probs):
    """Sizes of the terms behind each entry: rounding a score s costs about eps·|s| in every weight."""
    s = 1.0 / math.sqrt(q.shape[-1]) if scale is None else abs(float(scale))
    big = ((_64(q).abs() @ _64(k).abs().transpose(-2, -1)) * s).amax(-1, keepdim=True)   # (..., L, 1)
    p = probs.nan_to_num(0.0)
    return (p @ _64(v).abs()) * (1 + big), p * (1 + 2 * big)


def pair(ex, result):
    """Fails unless the result is a pair (out, probs)."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        fail(f"{describe_call(ex.last_call, ex)} should return a tuple (out, probs), but returned "
             f"{type(result).__name__}" + (f" of {len(result)}" if isinstance(result, (tuple, list)) else ""),
             on="type")


def check(ex, result, q, k, v, mask=None, scale=None, dtype=None, peaked=False):
    """Compares (out, probs) with the oracle on every row that sees a key; other rows must be finite."""
    dtype = dtype or q.dtype
    where = describe_call(ex.last_call, ex)
    pair(ex, result)
    out, probs = oracle(q, k, v, mask, scale)
    mag_out, mag_probs = magnitudes(q, k, v, mask, scale, probs)
    if peaked:       # one key wins every row by a wide margin: the weights are exactly one-hot
        mag_out, mag_probs = probs.nan_to_num(0.0) @ _64(v).abs(), None
    seen = torch.ones(out.shape[:-1] + (1,), dtype=torch.bool) if mask is None else \
        (~mask).any(-1, keepdim=True).expand(out.shape[:-1] + (1,))
    for part, (actual, expected, what, mag) in enumerate(((result[0], out, "out", mag_out),
                                                          (result[1], probs, "probs", mag_probs))):
        if isinstance(actual, torch.Tensor) and dtype in HALF and actual.dtype == torch.float32:
            fail(f"{where}: {what} is float32, but the inputs are {str(dtype).removeprefix('torch.')}.",
                 on="dtype", mistake=FLOAT32)
        if isinstance(actual, torch.Tensor) and tuple(actual.shape) == tuple(expected.shape):
            a = actual.to(torch.float64)
            # a row that sees no key has no right answer: any finite value will do
            expected = torch.where(seen.expand(expected.shape), expected, torch.where(a.isfinite(), a, 0.0))
        close(actual, expected, ex, dtype=dtype, part=part, what=what, magnitude=mag,
              attending=attending(q, k, v, mask, scale, seen, actual) if part == 0 else None)


def attending(q, k, v, mask, scale, rows_seen, actual):
    """For a wrong out: attention recomputed with other key weights, to name the keys it really attended to."""
    L, S = q.shape[-2], k.shape[-2]
    keys_seen = torch.ones(L, S, dtype=torch.bool) if mask is None else ~mask
    keys_seen = keys_seen.expand(broadcast_shape(keys_seen.shape, q.shape[:-2] + (L, S)))
    if not isinstance(actual, torch.Tensor):
        return None
    kept = actual.to(torch.float64)

    def attend(weights):
        out = attention_with_key_weights(q, k, v, weights, scale)
        return torch.where(rows_seen, out, kept)        # a row that sees no key has no right answer
    return Attending(attend, keys_seen)


def sdpa(ex, q, k, v, mask=None, scale=None, **options):
    kwargs = {}
    if mask is not None:
        kwargs["mask"] = mask
    if scale is not None:
        kwargs["scale"] = scale
    check(ex, ex.scaled_dot_product_attention(q, k, v, **kwargs), q, k, v, mask, scale, **options)


def sizes(rng):
    """L != S and d_k != d_v."""
    L, S = randint(rng, 2, 6), randint(rng, 2, 7)
    while S == L:
        S = randint(rng, 2, 7)
    d_k, d_v = randint(rng, 2, 9), randint(rng, 2, 9)
    while d_v == d_k:
        d_v = randint(rng, 2, 9)
    return L, S, d_k, d_v


def qkv(rng, lead, L, S, d_k, d_v, dtype, scale=1.0):
    return (randn(rng, *lead, L, d_k, dtype=dtype, scale=scale), randn(rng, *lead, S, d_k, dtype=dtype, scale=scale),
            randn(rng, *lead, S, d_v, dtype=dtype))


def random_mask(rng, *shape, p=0.3, empty_rows=1):
    """Random blocked keys, a few query rows blocked entirely, and every other row sees a key."""
    mask = torch.rand(*shape, generator=rng) < p
    mask[..., randint(rng, 0, shape[-1])] = False                          # one key always visible ...
    flat = mask.reshape(-1, shape[-1])
    for _ in range(empty_rows):                                             # ... except in these rows
        flat[randint(rng, 0, flat.shape[0])] = True
    return flat.reshape(shape)


def bottom_right_causal(L, S):
    i, j = torch.arange(L)[:, None], torch.arange(S)[None, :]
    return j > i + (S - L)


# -- tests ----------------------------------------------------------------------------------------
@graded("shapes", 1.5)
def test_shapes_of_out_and_probs(ex, rng):
    """returns out (..., L, d_v) and probs (..., L, S) for 4-D, 3-D and 2-D inputs, L != S, d_k != d_v"""
    for lead, dtype in (((randint(rng, 2, 4), randint(rng, 2, 4)), torch.float32),
                        ((randint(rng, 2, 4),), torch.float64), ((), torch.float32)):
        L, S, d_k, d_v = sizes(rng)
        result = ex.scaled_dot_product_attention(*qkv(rng, lead, L, S, d_k, d_v, dtype))
        pair(ex, result)
        shaped(result[0], (*lead, L, d_v), dtype, ex, what="out", part=0)
        shaped(result[1], (*lead, L, S), dtype, ex, what="probs", part=1)


@graded("equivalence", 2.5)
def test_matches_torch_sdpa(ex, rng):
    """matches torch.nn.functional.scaled_dot_product_attention (scale 1/sqrt(d_k)) for a batch of heads"""
    B, H = randint(rng, 2, 4), randint(rng, 2, 4)
    sdpa(ex, *qkv(rng, (B, H), *sizes(rng), torch.float64, scale=1.5))
    L, S, d_k, _ = sizes(rng)
    sdpa(ex, *qkv(rng, (B, H), L, S, d_k, d_k, torch.float64, scale=1.5))   # d_v == d_k too
    sdpa(ex, *close_race())


def close_race():
    """The same inputs on every seed: 16 queries, each torn between two keys whose scores (near ±100) differ by
    about 0.1, with values 2000 and 0: out needs the scores to float64's accuracy (float32 misses), and stays far
    from 0, so that a float32 path shows as float32's relative precision."""
    g = torch.Generator().manual_seed(20)
    q = randn(g, 1, 1, 16, 16, dtype=torch.float64, scale=10.0)
    k = randn(g, 1, 1, 1, 16, dtype=torch.float64, scale=10.0).expand(1, 1, 2, 16).clone()
    k[..., 1, :] += randn(g, 16, dtype=torch.float64, scale=0.01)
    v = torch.tensor([2e3, 0.0], dtype=torch.float64)[:, None].expand(1, 1, 2, 3).clone()
    return q, k, v


@graded("equivalence", 1.5)
def test_explicit_scale_including_zero(ex, rng):
    """an explicit scale replaces 1/sqrt(d_k); scale=0.0 is used as it is (uniform weights)"""
    L, S, d_k, d_v = sizes(rng)
    d_k = d_v + 2                                                    # so that 1/sqrt(d_k) != 1/sqrt(d_v)
    tensors = qkv(rng, (randint(rng, 2, 4),), L, S, d_k, d_v, torch.float64, scale=1.5)
    sdpa(ex, *tensors, scale=choice(rng, (0.2, 0.7)))
    sdpa(ex, *close_race(), scale=0.3)          # every seed: scores needed to float64's accuracy
    sdpa(ex, *tensors, scale=0.0)


@graded("masking", 2)
def test_masks_broadcast_and_block_keys(ex, rng):
    """bool masks (True = blocked) of shapes (B, 1, L, S), (L, S) and (B, 1, 1, S) hide keys before the softmax"""
    B, H = randint(rng, 2, 4), randint(rng, 2, 4)
    L, S, d_k, d_v = sizes(rng)
    S = max(min(L, S), 3)                                            # rows see several keys: a slip shows in values
    L = max(L, S + 1)                                                # more queries than keys: early rows see none
    q, k, v = qkv(rng, (B, H), L, S, d_k, d_v, torch.float64, scale=0.5)   # small scores: every key seen counts
    padding = torch.zeros(B, S, dtype=torch.bool)
    padding[0, -1] = padding[-1, 1:] = True
    for mask in (fixed_mask(B, L, S), bottom_right_causal(L, S), padding[:, None, None, :],
                 random_mask(rng, B, 1, L, S, empty_rows=2)):
        keys_hidden(ex, lambda k, v: ex.scaled_dot_product_attention(q, k, v, mask=mask), k, v, mask)
        broadcast = ex.scaled_dot_product_attention(q, k, v, mask=mask)
        call = ex.last_call
        pair(ex, broadcast)
        expanded = ex.scaled_dot_product_attention(q, k, v, mask=mask.expand(B, H, L, S))
        pair(ex, expanded)
        for i, what in enumerate(("out", "probs")):
            agrees(broadcast[i], call, expanded[i], f"should give, in {what}, your own result with the mask "
                   "expanded to (B, H, L, S)", ex, dtype=torch.float64, what=what)
        probs = torch.as_tensor(broadcast[1])
        seen = ~mask.expand(B, H, L, S).all(-1, keepdim=True)
        for i, what in enumerate(("out", "probs")):
            result = torch.as_tensor(broadcast[i])
            bad = ~result.isfinite().all(-1)
            if bad.any():
                where = ("at queries that see no key" if not (bad & seen[..., 0]).any() else
                         f"at {int(bad.sum())} queries, {int((bad & seen[..., 0]).sum())} of which see some key")
                # named only when the learner's result is that mistake's, to float64's precision
                known = _known_mistake(ex, call, result, i, *TOLERANCE[torch.float64], None) \
                    if result.dtype == torch.float64 else None
                fail(f"{describe_call(call, ex)}: {what} holds NaN or inf {where}.", mistake=known)
        if (probs.ne(0) & mask & seen).any():
            fail(f"{describe_call(call, ex)}: probs is not 0 at {int((probs.ne(0) & mask & seen).sum())} blocked "
                 "keys of queries that see some key: a blocked key gets no weight.")


def peaked(rng, B, H, L, S, d_v, dtype):
    """float16 scores near ±1e4 (unscaled |q·k| up to 5.4e4; batch item 0 negative, the last positive) where one
    key beats the next by 225 in every row."""
    d_k = 16
    levels = torch.arange(-60, 61, 15, dtype=torch.float64)                      # 9 levels, 15 apart
    order = torch.rand(B, H, L, len(levels), generator=rng).argsort(-1)[..., :S]
    q = torch.zeros(B, H, L, d_k, dtype=torch.float64)
    q[..., :S] = levels[order]                                                    # score(i, j) = 60 q[i, j] + shift
    sign = torch.where(torch.rand(B, generator=rng) < 0.5, -1.0, 1.0).to(torch.float64)
    sign[0], sign[-1] = -1.0, 1.0
    q[..., S:] = 60 * sign[:, None, None, None]                                   # shift ±3600·(16 - S)
    k = torch.zeros(B, H, S, d_k, dtype=torch.float64)
    k[..., :S] = 60 * torch.eye(S, dtype=torch.float64)
    k[..., S:] = 60
    perm = torch.randperm(d_k, generator=rng)                                     # hide the structure
    return (q[..., perm].to(dtype), k[..., perm].to(dtype), randn(rng, B, H, S, d_v, dtype=dtype))


def fixed_mask(B, L, S):
    """(B, 1, L, S): query 0 sees no key, key 0 is hidden from every other query, and the last query of
    batch item 0 sees only the last key. The same on every seed."""
    mask = torch.zeros(B, 1, L, S, dtype=torch.bool)
    mask[:, :, 0] = True
    mask[:, :, 1:, 0] = True
    mask[0, 0, -1, :-1] = True
    return mask


@graded("masking", 1.5)
def test_explicit_scale_with_masks(ex, rng):
    """an explicit scale of 0 or above 1 does not undo the mask: blocked keys, fully masked rows included, stay blocked"""
    for dtype in (torch.float64, torch.float32):
        L, S, d_k, d_v = sizes(rng)
        L, S = max(L, 3), max(S, 3)
        tensors = qkv(rng, (2, 2), L, S, d_k, d_v, dtype, scale=1.5)
        for scale in (2.0, 0.0, 4.0):
            sdpa(ex, *tensors, mask=fixed_mask(2, L, S), scale=scale)


@graded("fp16", 1.5)
def test_float16_large_logits_and_fully_masked_rows(ex, rng):
    """float16 with scores near ±1e4 and fully masked rows: finite, exact, still float16"""
    B, H, L, S, d_v = randint(rng, 2, 4), 2, randint(rng, 3, 6), randint(rng, 2, 8), randint(rng, 2, 6)
    q, k, v = peaked(rng, B, H, L, S, d_v, torch.float16)
    mask = random_mask(rng, B, H, L, S, p=0.4, empty_rows=0)
    for _ in range(2):      # queries that see no key, in batch item 0 whose scores are near -1e4
        mask[0, randint(rng, 0, H), randint(rng, 0, L)] = True
    # every seed: the last query of item 1 sees every key but its winner
    win = int((q[1, 0, -1].double() @ k[1, 0].double().T).argmax())
    mask[1, 0, -1] = False
    mask[1, 0, -1, win] = True
    sdpa(ex, q, k, v, mask=mask, peaked=True)


@graded("fp16", 1.5)
def test_half_precision_accuracy(ex, rng):
    """float16 and bfloat16 with a mask: accurate to the dtype, and out and probs keep it"""
    for dtype in HALF:
        B, H = randint(rng, 1, 3), randint(rng, 2, 4)
        L, S, d_k, d_v = sizes(rng)
        q, k, v = qkv(rng, (B, H), L, S, d_k, d_v, dtype)
        mask = random_mask(rng, B, 1, L, S)
        probs = oracle(q, k, v, mask)[1]
        rounds_own_float64(ex, "scaled_dot_product_attention", q, k, v, mask=mask, dtype=dtype,
                           magnitude=magnitudes(q, k, v, mask, None, probs))


@graded("edge", 1)
def test_one_key_or_one_query(ex, rng):
    """S = 1 copies the value row; L = 1 (a single query, with a mask) works"""
    B, L, d_k, d_v = randint(rng, 1, 4), randint(rng, 2, 5), randint(rng, 2, 6), randint(rng, 2, 6)
    sdpa(ex, *qkv(rng, (B,), L, 1, d_k, d_v, torch.float64))
    L, S, d_k, d_v = sizes(rng)
    S = max(S, 3)
    q, k, v = qkv(rng, (2,), 1, S, d_k, d_v, torch.float32)
    mask = random_mask(rng, 2, 1, S, empty_rows=0)
    mask[..., :2], mask[..., -1] = False, True      # every seed: two keys seen (the scale matters), one blocked
    sdpa(ex, q, k, v, mask=mask)


@graded("edge", 0.5, checks="inputs")
def test_inputs_left_alone(ex, rng):
    """q, k, v and the mask are not modified"""
    L, S, d_k, d_v = sizes(rng)
    q, k, v = qkv(rng, (2,), L, S, d_k, d_v, torch.float32)
    mask = random_mask(rng, 2, L, S, empty_rows=0)
    unchanged_inputs(ex, "scaled_dot_product_attention", q, k, v, mask=mask)


@graded("work", 0.75)
def test_no_python_loops(ex, rng):
    """dispatches as many tensor operations for 8 heads, batches or queries as for 2: no Python loop"""
    def call(B, H, L):
        q, k, v = qkv(rng, (B, H), L, L + 1, 4, 3, torch.float32)
        ex.scaled_dot_product_attention(q, k, v, mask=bottom_right_causal(L, L + 1))
    no_loops(ex, call, {"B": (2, 8), "H": (2, 8), "L": (2, 8)})


@graded("rules", 0.5)
def test_no_fused_attention(ex, rng):
    """is built without torch's scaled_dot_product_attention or any other fused attention helper"""
    ex.scaled_dot_product_attention(randn(rng, 2, 3), randn(rng, 4, 3), randn(rng, 4, 2))
    rules_respected(ex)
