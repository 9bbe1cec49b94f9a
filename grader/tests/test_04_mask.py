"""Hidden tests for exercise 04: causal and padding masks, applied to the scores before softmax."""
import torch

from grader.checks import devices_kept
from grader.checks import (Fail, Mistake, as_tensor, close, describe_call, fail, graded, randint, randn, shaped,
                           rules_respected, unchanged_inputs)

TITLE = "causal and padding masks"   # what the learner reads (README table: python -m grader.course sync)
CHECKS_DEVICES = True   # a test calls the code on the meta device (the zygote loads its kernels once)
STEP = "4. Mask before softmax"


# -- the right answers ------------------------------------------------------------------------
def oracle_causal(L, S=None, device=None):
    """torch.triu: key j blocked when j - i >= S - L + 1 (bottom-right aligned)."""
    S = L if S is None else S
    return torch.triu(torch.ones(L, S, dtype=torch.bool), diagonal=S - L + 1)


def oracle_padding(lengths, S):
    lengths = [int(n) for n in lengths]
    mask = torch.ones(len(lengths), S, dtype=torch.bool)
    for b, n in enumerate(lengths):
        mask[b, :n] = False
    return mask[:, None, None, :]


def oracle_apply(scores, mask, fill=None):
    fill = torch.finfo(scores.dtype).min if fill is None else fill
    return torch.where(mask, torch.tensor(fill, dtype=torch.float64), scores.to(torch.float64))


# -- known wrong ways -------------------------------------------------------------------------
def _causal(offset):
    def wrong(L, S=None, device=None):
        S = L if S is None else S
        i, j = torch.arange(L)[:, None], torch.arange(S)[None, :]
        return offset(i, j, L, S)
    return wrong


def _padding(build):
    def wrong(lengths, S):
        n = torch.as_tensor([int(x) for x in lengths])
        return build(torch.arange(S)[None, :], n[:, None])
    return wrong


CONSTANT = "masked scores filled with a fixed constant (such as -1e9 or -1e4) instead of the dtype's min"
CONSTANT_FIX = ("A constant is not right in every dtype (-1e9 overflows float16; -1e4 is an ordinary score in "
                "float32 when logits are large). Fill with torch.finfo(scores.dtype).min.")


def _constant(scores, mask, value):
    fill = float(torch.tensor(value, dtype=torch.float64).to(scores.dtype))
    if fill in (float("inf"), float("-inf")):
        raise ValueError("masked_fill would refuse this constant in this dtype")
    return oracle_apply(scores, mask, fill)


IN_PLACE = Mistake("apply_mask", "input scores modified in place", STEP,
                   "Return a new tensor: scores.masked_fill(mask, value) (no trailing underscore) or "
                   "torch.where(mask, value, scores); never `scores[mask] = ...` on the caller's tensor.",
                   lambda scores, mask: oracle_apply(scores, mask), key="in_place")

MISTAKES = [
    Mistake("causal_mask", "causal mask includes the diagonal", STEP,
            "A token may attend to itself: block key j only when j > i + (S - L), not j >= i + (S - L) "
            "(torch.triu(..., diagonal=S - L + 1)).",
            _causal(lambda i, j, L, S: j >= i + (S - L)), key="diagonal_masked"),
    Mistake("causal_mask", "mask lower-triangular (future allowed, past blocked)", STEP,
            "True means blocked, and a query must not see later keys: block keys after the query, "
            "j > i + (S - L), not before it.",
            _causal(lambda i, j, L, S: j < i + (S - L)), key="mask_lower_triangular"),
    Mistake("causal_mask", "mask marks the allowed keys (True = visible) instead of the blocked ones", STEP,
            "True means blocked, as in scores.masked_fill(mask, ...): True where j > i + (S - L).",
            _causal(lambda i, j, L, S: j <= i + (S - L)), key="causal_mask_inverted"),
    Mistake("causal_mask", "causal mask aligned top-left when S > L", STEP,
            "With S > L the L queries are the last L positions (decoding with a cache): block j > i + (S - L), "
            "so that the last query sees every key.",
            _causal(lambda i, j, L, S: j > i), key="causal_top_left"),
    Mistake("causal_mask", "causal offset with the wrong sign (j > i + (L - S))", STEP,
            "The queries are the last L of S positions: block j > i + (S - L), so the last query sees every key.",
            _causal(lambda i, j, L, S: j > i + (L - S)), key="causal_offset_sign"),
    Mistake("padding_mask", "padding mask inverted (True on the real tokens)", STEP,
            "True marks padded keys, the ones to hide: True where j >= lengths[b].",
            _padding(lambda j, n: (j < n)[:, None, None, :]), key="padding_inverted"),
    Mistake("padding_mask", "padding mask built over queries ((B, 1, S, 1) instead of (B, 1, 1, S))", STEP,
            "Padding hides keys from every query: True marks padded keys, so the mask is (B, 1, 1, S), "
            "broadcasting over heads and queries.",
            _padding(lambda j, n: (j >= n)[:, None, :, None]), key="padding_over_queries"),
    Mistake("padding_mask", "padding mask off by one (key number lengths[b] left visible)", STEP,
            "Keys 0 .. lengths[b] - 1 are real: block j >= lengths[b], not j > lengths[b].",
            _padding(lambda j, n: (j > n)[:, None, None, :]), key="padding_off_by_one"),
    Mistake("padding_mask", "padding mask not shaped (B, 1, 1, S)", STEP,
            "Add singleton head and query axes (mask[:, None, None, :]) so that it broadcasts against "
            "(B, H, L, S) scores.",
            _padding(lambda j, n: j >= n), key="padding_not_shaped"),
    Mistake("apply_mask", "masked scores filled with 0", STEP,
            "0 is an ordinary score, so blocked keys keep weight after softmax. Fill with the dtype's most "
            "negative finite value, torch.finfo(scores.dtype).min.",
            lambda scores, mask: oracle_apply(scores, mask, 0.0), key="fill_zero"),
    Mistake("apply_mask", "mask applied inverted (the allowed scores replaced)", STEP,
            "True means blocked: replace the scores where the mask is True, keep them where it is False.",
            lambda scores, mask: oracle_apply(scores, ~mask), key="mask_applied_inverted"),
    Mistake("apply_mask", CONSTANT, STEP, CONSTANT_FIX, lambda scores, mask: _constant(scores, mask, -1e9), key="fill_constant"),
    Mistake("apply_mask", CONSTANT, STEP, CONSTANT_FIX, lambda scores, mask: _constant(scores, mask, -1e4), key="fill_constant"),
    Mistake("apply_mask", "masked scores filled with float32's min whatever the dtype", STEP,
            "The fill depends on the scores' dtype: torch.finfo(scores.dtype).min (float32's min overflows "
            "float16 and is far from the min of float64).",
            lambda scores, mask: _constant(scores, mask, torch.finfo(torch.float32).min), key="fill_float32_min"),
    # Last: a wrong answer holding -inf matches any value there (see the grader's tolerance on |wrong|).
    Mistake("apply_mask", "masked scores filled with −inf", STEP,
            "A row whose keys are all blocked would be all -inf, and softmax gives NaN (-inf - -inf). Fill with "
            "the dtype's most negative finite value, torch.finfo(scores.dtype).min.",
            lambda scores, mask: oracle_apply(scores, mask, float("-inf")), key="fill_neg_inf"),
    IN_PLACE,
]


def check_mask(ex, actual, expected, what):
    actual = as_tensor(actual, f"the mask from {describe_call(ex.last_call, ex)}")
    if actual.dtype != torch.bool:
        ex.outcomes.append((ex.last_call, False))
        fail(f"{describe_call(ex.last_call, ex)} should return a bool mask (True = blocked), but its dtype is "
             f"{str(actual.dtype).removeprefix('torch.')}: {what}.")
    close(actual, expected, ex, dtype=torch.bool)


def masked(ex, scores, mask, dtype=None):
    close(ex.apply_mask(scores, mask), oracle_apply(scores, mask), ex, dtype=dtype or scores.dtype)


# -- tests ------------------------------------------------------------------------------------
@graded("shapes", 1)
def test_shapes_and_dtypes(ex, rng):
    """causal_mask is bool (L, S), padding_mask bool (B, 1, 1, S), apply_mask keeps the scores' shape"""
    L, S, B = randint(rng, 2, 6), randint(rng, 2, 8), randint(rng, 2, 4)
    while S == L + 1:       # there a top-left mask and a blocked diagonal coincide: the mistake would be ambiguous
        S = randint(rng, 2, 8)
    shaped(ex.causal_mask(L, S), (L, S), torch.bool, ex, what="the mask")
    lengths = [randint(rng, 1, S + 1) for _ in range(B)]
    shaped(ex.padding_mask(lengths, S), (B, 1, 1, S), torch.bool, ex, what="the mask")
    shaped(ex.apply_mask(randn(rng, B, 1, L, S, dtype=torch.float32), oracle_padding(lengths, S)), (B, 1, L, S),
           torch.float32, ex)


@graded("equivalence", 1.5)
def test_causal_mask_square(ex, rng):
    """causal_mask(L) matches torch.triu(ones(L, L), diagonal=1): True strictly above the diagonal"""
    L = randint(rng, 3, 8)
    check_mask(ex, ex.causal_mask(L), oracle_causal(L), "key j blocked when j > i")
    check_mask(ex, ex.causal_mask(1), oracle_causal(1), "a single query sees its single key")


@graded("masking", 2.5)
def test_causal_mask_bottom_right_with_more_keys(ex, rng):
    """with S != L the causal mask is aligned bottom-right: the last query sees every key"""
    L = randint(rng, 2, 6)
    S = L + randint(rng, 2, 5)        # S - L >= 2: top-left alignment and a blocked diagonal differ
    check_mask(ex, ex.causal_mask(L, S), oracle_causal(L, S), "key j blocked when j > i + (S - L)")
    check_mask(ex, ex.causal_mask(S, L, device="cpu"), oracle_causal(S, L),
               "with more queries than keys the first S - L queries see nothing")


@graded("masking", 2)
def test_padding_mask_hides_padded_keys(ex, rng):
    """padding_mask(lengths, S) is bool (B, 1, 1, S), True where key j >= lengths[b]"""
    S = randint(rng, 4, 9)
    lengths = [randint(rng, 1, S) for _ in range(randint(rng, 2, 5))] + [S]
    check_mask(ex, ex.padding_mask(lengths, S), oracle_padding(lengths, S), "True marks padded keys")
    lengths = torch.tensor([randint(rng, 0, S) for _ in range(randint(rng, 2, 5))],
                           dtype=torch.int64 if randint(rng, 0, 2) else torch.int32)
    check_mask(ex, ex.padding_mask(lengths, S), oracle_padding(lengths, S), "lengths given as a tensor")


@graded("masking", 2)
def test_apply_mask_broadcasts(ex, rng):
    """apply_mask fills blocked scores with finfo(dtype).min, masks broadcasting over (B, H, L, S)"""
    B, H, L = randint(rng, 2, 4), randint(rng, 1, 3), randint(rng, 2, 6)
    S = L + randint(rng, 0, 4)
    scores = randn(rng, B, H, L, S, dtype=torch.float32, scale=3)
    masked(ex, scores, oracle_causal(L, S))
    lengths = [randint(rng, 1, S) for _ in range(B)]
    masked(ex, scores.to(torch.float64), oracle_padding(lengths, S))


@graded("fp16", 1.5)
def test_half_precision_stays_finite(ex, rng):
    """float16 and bfloat16 keep their dtype and fill with the dtype's finite min, even on fully blocked rows"""
    for dtype in (torch.float16, torch.bfloat16):
        L, S = randint(rng, 2, 5), randint(rng, 3, 7)
        scores = randn(rng, randint(rng, 1, 3), 2, L, S, dtype=dtype, scale=10)
        mask = oracle_causal(L, S) | (torch.rand(L, S, generator=rng) < 0.3)
        mask[0] = True                                  # a query that sees no key
        masked(ex, scores, mask)


@graded("edge", 1, checks="inputs")
def test_new_tensor_inputs_left_alone(ex, rng):
    """apply_mask returns a new tensor and leaves the scores and the mask unchanged"""
    L, S = randint(rng, 2, 6), randint(rng, 2, 6)
    scores = randn(rng, 2, L, S, dtype=torch.float64)
    mask = torch.rand(2, L, S, generator=rng) < 0.5
    mask[0, 0, 0] = True
    try:
        unchanged_inputs(ex, "apply_mask", scores, mask)
    except Fail as f:
        fail(str(f), on=f.on, mistake=IN_PLACE)


@graded("edge", 0.5)
def test_mask_of_the_same_shape(ex, rng):
    """a mask of the scores' own shape works, down to a single blocked score"""
    L, S = randint(rng, 2, 6), randint(rng, 2, 6)
    scores = randn(rng, 2, L, S, dtype=torch.float64)
    mask = torch.rand(2, L, S, generator=rng) < 0.5
    mask[0, 0, 0] = True
    close(ex.apply_mask(scores, mask), oracle_apply(scores, mask), ex, dtype=torch.float64)
    masked(ex, scores[:1, :1, :1].clone(), torch.ones(1, 1, 1, dtype=torch.bool))


@graded("rules", 0.5)
def test_no_fused_attention(ex, rng):
    """is built without a fused attention helper"""
    ex.causal_mask(3)
    rules_respected(ex)


@graded("edge", 0.25, checks="device")
def test_masks_live_on_the_device_asked_for(ex, rng):
    """causal_mask(..., device=d) and apply_mask give tensors on that device (checked on the meta device)"""
    L = 4                           # fixed, as the point is: the same on every seed
    devices_kept(ex, "causal_mask", L, L + 2, device="cpu")
    scores = randn(rng, 2, 1, L, L)
    devices_kept(ex, "apply_mask", scores, torch.ones(L, L, dtype=torch.bool).triu(1))
