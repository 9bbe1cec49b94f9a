"""Hidden tests for exercise 14: tiled attention with an online softmax (FlashAttention-style)."""
import math

import torch

from grader.checks import devices_kept
from grader.checks import no_loops
from grader.checks import (Attending, Mistake, agrees, as_tensor, attention_with_key_weights, close, fail, graded,
                           randint, randn, rules_respected, shaped)
from grader.guards import SOFTMAX_FAMILY

TITLE = "FlashAttention-style tiled attention"   # what the learner reads (README table: python -m grader.course sync)
CHECKS_DEVICES = True   # a test calls the code on the meta device (the zygote loads its kernels once)
FORBIDDEN = SOFTMAX_FAMILY
COST = 8       # its tests take about eight times a typical exercise's (grading workers take the costliest first)
STEP = "follow-up: tiled attention with online softmax"
FULL_MATRIX = "the full score matrix built anyway"
NO_SKIP = "wholly masked blocks computed anyway under causal"
FULL_MATRIX_MISTAKE = Mistake(
    "flash_attention", FULL_MATRIX, STEP,
    "Tile over keys as well as queries: hold one (block_size, block_size) tile of scores at a time, never (L, S) "
    "(nor a full (L, S) mask).", key="full_score_matrix")
NO_SKIP_MISTAKE = Mistake(
    "flash_attention", NO_SKIP, STEP,
    "Under causal, the query block [q0, q1) sees no key past q1 − 1 + (S − L): stop the key loop there instead "
    "of computing those blocks and masking them out.", key="masked_blocks_not_skipped")


# -- the right answers, in float64 ------------------------------------------------------------
def blocked(L, S, causal, top_left=False):
    """(L, S) bool, True = key not seen: bottom-right causal (key j > i + S - L), as in exercise 04."""
    if not causal:
        return torch.zeros(L, S, dtype=torch.bool)
    return torch.ones(L, S, dtype=torch.bool).triu(1 if top_left else S - L + 1)


def oracle(q, k, v, causal=False, scale=None, block_size=64, top_left=False):
    """out (B, H, L, d_v) and lse (B, H, L); a query that sees no key has out 0 and lse -inf."""
    q, k, v = (t.to(torch.float64) for t in (q, k, v))
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = (q @ k.transpose(-2, -1) * scale).masked_fill(blocked(q.shape[-2], k.shape[-2], causal, top_left), -math.inf)
    lse = torch.logsumexp(s, dim=-1)
    seen = torch.isfinite(lse)[..., None]
    p = torch.where(seen, torch.exp(s - torch.where(seen, lse[..., None], 0.0)), 0.0)
    return p @ v, lse


def online(q, k, v, causal=False, scale=None, block_size=64, rescale_acc=True, rescale_sum=True):
    """What a tiled pass that skips a rescaling returns (a known slip), in float64 and in closed form: the keys
    of each block keep the weight exp(s − m_b), m_b the running max after their block (a cummax over the block
    maxima), instead of exp(s − m) with the final max m. With both rescalings it is the oracle."""
    q, k, v = (t.to(torch.float64) for t in (q, k, v))
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    L, S = q.shape[-2], k.shape[-2]
    s = (q @ k.transpose(-2, -1) * scale).masked_fill(blocked(L, S, causal), -math.inf)
    n = -(-S // block_size)
    block_max = torch.nn.functional.pad(s, (0, n * block_size - S), value=-math.inf).unflatten(
        -1, (n, block_size)).amax(-1)
    running = torch.cummax(block_max, dim=-1).values
    final = running[..., -1:]
    per_key = running.repeat_interleave(block_size, dim=-1)[..., :S]

    def weights(m):
        return torch.exp(s - torch.where(torch.isinf(m), 0.0, m))
    acc = weights(final if rescale_acc else per_key) @ v
    l = weights(final if rescale_sum else per_key).sum(-1)
    return acc / torch.where(l == 0, 1.0, l)[..., None], final[..., 0] + torch.log(l)


def _nan_rows(q, k, v, causal=False, scale=None, block_size=64):
    out, lse = oracle(q, k, v, causal, scale)
    return out.masked_fill(torch.isinf(lse)[..., None], math.nan), lse


def _lse_without_max(q, k, v, causal=False, scale=None, block_size=64):
    out, lse = oracle(q, k, v, causal, scale)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = (q.double() @ k.double().transpose(-2, -1) * scale).masked_fill(
        blocked(q.shape[-2], k.shape[-2], causal), -math.inf)
    return out, lse - s.amax(-1)


MISTAKES = [
    Mistake("flash_attention", "running accumulator not rescaled when the max changes", STEP,
            "When a block raises the running max from m_old to m_new, everything accumulated so far was "
            "weighted by exp(s − m_old): multiply the accumulator (and the running sum) by exp(m_old − m_new) "
            "before adding the new block.",
            lambda q, k, v, causal=False, scale=None, block_size=64:
            online(q, k, v, causal, scale, block_size, rescale_acc=False), key="no_rescale"),
    Mistake("flash_attention", "running accumulator not rescaled when the max changes", STEP,
            "Multiply both the running sum l and the accumulator by exp(m_old − m_new) when the max grows.",
            lambda q, k, v, causal=False, scale=None, block_size=64:
            online(q, k, v, causal, scale, block_size, rescale_acc=False, rescale_sum=False), key="no_rescale"),
    Mistake("flash_attention", "the running sum is not rescaled when the max changes (the accumulator is)", STEP,
            "l collects exp(s − m) too: multiply it by exp(m_old − m_new) along with the accumulator.",
            lambda q, k, v, causal=False, scale=None, block_size=64:
            online(q, k, v, causal, scale, block_size, rescale_sum=False), key="sum_not_rescaled"),
    Mistake("flash_attention", "lse in base 2 (log2) instead of the natural log", STEP,
            "lse is the natural logsumexp: m + log(l). If you used exp2 with scores times log2(e), divide the "
            "base-2 result by log2(e) (multiply by ln 2).",
            lambda q, k, v, causal=False, scale=None, block_size=64:
            (oracle(q, k, v, causal, scale)[0], oracle(q, k, v, causal, scale)[1] / math.log(2)), key="lse_base_two"),
    Mistake("flash_attention", "lse without the running max (log(l) instead of m + log(l))", STEP,
            "l sums exp(s − m): the logsumexp of the scores is m + log(l).",
            _lse_without_max, key="lse_without_max"),
    Mistake("flash_attention", "scores not scaled before exp (no scale, or the scale applied after exp, where "
            "normalising cancels it)", STEP,
            "Multiply q·k by the scale (1/sqrt(d_k) by default) before the max and the exp: "
            "exp(scale·s) is not scale·exp(s).",
            lambda q, k, v, causal=False, scale=None, block_size=64: oracle(q, k, v, causal, 1.0), key="scores_not_scaled"),
    Mistake("flash_attention", "the `scale` argument is ignored", STEP,
            "An explicit scale replaces 1/sqrt(d_k); only scale=None means the default.",
            lambda q, k, v, causal=False, scale=None, block_size=64: oracle(q, k, v, causal, None), key="scale_ignored"),
    Mistake("flash_attention", "causal mask aligned top-left when L != S", STEP,
            "Causal alignment is bottom-right, as in exercise 04: query i sees key j when j <= i + (S − L).",
            lambda q, k, v, causal=False, scale=None, block_size=64: oracle(q, k, v, causal, scale, top_left=True), key="causal_top_left"),
    Mistake("flash_attention", "a query that sees no key comes out NaN (0 / 0)", STEP,
            "Such a row has l = 0: divide by l only where l > 0 and give out 0 (lse = m + log 0 = −inf).",
            _nan_rows, key="nan_rows"),
]


def qkv(rng, B, H, L, S, d_k, d_v=None, dtype=torch.float32):
    return (randn(rng, B, H, L, d_k, dtype=dtype), randn(rng, B, H, S, d_k, dtype=dtype),
            randn(rng, B, H, S, d_v or d_k, dtype=dtype))


def pair(result):
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        fail(f"flash_attention should return a pair (out, lse); it returned {type(result).__name__}.", on="type")


def check(ex, result, q, k, v, causal=False, scale=None, magnitude=None):
    """out against the oracle in q's dtype, lse in float32 (half inputs: half tolerances). A wrong out is
    searched for the keys it really attended to (a tile dropped, counted twice, unmasked at the diagonal)."""
    pair(result)
    out, lse = result
    want_out, want_lse = oracle(q, k, v, causal, scale)
    seen = ~blocked(q.shape[-2], k.shape[-2], causal)
    block_size = ex.last_call[2].get("block_size") if ex.last_call else None
    attending = Attending(lambda weights: attention_with_key_weights(q, k, v, weights, scale), seen, block_size)
    close(out, want_out, ex, dtype=q.dtype, part=0, magnitude=magnitude, attending=attending)
    lse = as_tensor(lse, "lse")
    if lse.dtype != torch.float32:
        fail(f"lse should be float32 whatever the input's dtype (it is {str(lse.dtype).removeprefix('torch.')} "
             f"for {str(q.dtype).removeprefix('torch.')} inputs): the log-sum-exp is kept for the backward pass, "
             "and float16 would lose it.")
    half = q.dtype in (torch.float16, torch.bfloat16)
    close(lse, want_lse, ex, dtype=torch.float32, part=1, what="lse",
          rtol=1e-2 if half else None, atol=2e-3 if half else None,
          magnitude=None if magnitude is None else magnitude[..., 0])


# -- tests ------------------------------------------------------------------------------------
@graded("shapes", 1)
def test_shapes_and_dtypes(ex, rng):
    """returns out (B, H, L, d_v) in the input's dtype and lse (B, H, L) in float32"""
    for dtype in (torch.float32, torch.float64):
        B, H, L, S = randint(rng, 1, 3), randint(rng, 1, 3), randint(rng, 1, 9), randint(rng, 1, 9)
        q, k, v = qkv(rng, B, H, L, S, randint(rng, 2, 9), randint(rng, 2, 9), dtype)
        result = ex.flash_attention(q, k, v, block_size=4)
        pair(result)
        shaped(result[0], (B, H, L, v.shape[-1]), dtype, ex, what="out", part=0)
        shaped(result[1], (B, H, L), torch.float32, ex, what="lse", part=1)


@graded("equivalence", 1.5)
def test_matches_attention_across_block_sizes(ex, rng):
    """out and lse match exact attention whether block_size divides L and S or not"""
    q, k, v = qkv(rng, 2, 2, 48, 48, 8, dtype=torch.float64)
    check(ex, ex.flash_attention(q, k, v, block_size=16), q, k, v)      # the max changes from block to block
    for L, S, block in ((randint(rng, 10, 30), randint(rng, 10, 30), randint(rng, 3, 8)),
                        (randint(rng, 2, 7), randint(rng, 20, 40), 8),
                        (randint(rng, 3, 9), randint(rng, 3, 9), 64)):
        q, k, v = qkv(rng, 1, randint(rng, 1, 3), L, S, 8, randint(rng, 3, 9), torch.float64)
        check(ex, ex.flash_attention(q, k, v, block_size=block), q, k, v)


@graded("equivalence", 0.5)
def test_explicit_scale_is_used(ex, rng):
    """an explicit scale replaces 1/sqrt(d_k)"""
    q, k, v = qkv(rng, 1, 2, 13, 11, 8, dtype=torch.float32)
    check(ex, ex.flash_attention(q, k, v, scale=0.3, block_size=4), q, k, v, scale=0.3)


@graded("masking", 2)
def test_causal_bottom_right(ex, rng):
    """causal masking is bottom-right, for L = S and L < S, blocks dividing or not"""
    # every seed, first: four query blocks, so that a slip in the causal skip shows as what it is
    q, k, v = qkv(rng, 1, 2, 16, 16, 8, dtype=torch.float64)
    check(ex, ex.flash_attention(q, k, v, causal=True, block_size=4), q, k, v, causal=True)
    L = randint(rng, 12, 30)
    q, k, v = qkv(rng, 1, 2, L, L, 8, dtype=torch.float64)
    check(ex, ex.flash_attention(q, k, v, causal=True, block_size=randint(rng, 3, 8)), q, k, v, causal=True)
    L, S = randint(rng, 5, 12), randint(rng, 14, 30)
    q, k, v = qkv(rng, 2, 1, L, S, 8, dtype=torch.float64)
    check(ex, ex.flash_attention(q, k, v, causal=True, block_size=4), q, k, v, causal=True)
    # every seed: a last tile that ends one key past the diagonal of its first query
    q, k, v = qkv(rng, 1, 2, 6, 6, 8, dtype=torch.float64)
    check(ex, ex.flash_attention(q, k, v, causal=True, block_size=4), q, k, v, causal=True)


@graded("masking", 1.5)
def test_causal_at_block_boundaries(ex, rng):
    """causal tiles at block edges: L and S at multiples of the block ±1, S − L from 0 to a block past it"""
    block = 4
    for L in (block - 1, block, block + 1, 2 * block - 2, 2 * block):     # every L mod block
        for offset in range(0, block + 2):                                 # q1 + offset on and off block edges
            q, k, v = qkv(rng, 1, 2, L, L + offset, 4, dtype=torch.float64)
            check(ex, ex.flash_attention(q, k, v, causal=True, block_size=block), q, k, v, causal=True)


@graded("masking", 1.5)
def test_queries_that_see_no_key(ex, rng):
    """causal with L > S: a query that sees no key gives out 0 and lse −inf"""
    S, L = 5, 8         # every seed: the last key tile (keys 3..4) ends one key past query 6's diagonal
    q, k, v = qkv(rng, 2, 2, L, S, 4, dtype=torch.float32)
    q, k = q.abs() + 1, k.abs() + torch.arange(S, dtype=torch.float32)[:, None]   # the max grows block by block
    check(ex, ex.flash_attention(q, k, v, causal=True, block_size=3), q, k, v, causal=True)


@graded("edge", 0.5)
def test_scores_far_below_zero(ex, rng):
    """scores all near −1000 (and all near +1000): the running max starts at −inf, not at 0"""
    for sign in (-1.0, 1.0):
        q, k, v = qkv(rng, 1, 2, 9, 10, 4, dtype=torch.float32)
        q = (q.abs() + 2) * 8.0                     # every q·k of one sign, |q·k| / sqrt(d_k) in the hundreds
        k = sign * (k.abs() + 2) * 8.0
        k[..., -1, :] = 16.0 * sign if sign < 0 else 320.0     # the last key wins every row, on every seed
        check(ex, ex.flash_attention(q, k, v, block_size=4), q, k, v)


@graded("fp16", 1)
def test_half_precision(ex, rng):
    """float16 and bfloat16 inputs: out keeps the dtype, lse is float32, both accurate"""
    for dtype in (torch.float16, torch.bfloat16):
        q, k, v = qkv(rng, 1, 2, 20, 24, 16, dtype=dtype)
        scale = 0.25
        mag = (q.double().abs() @ k.double().abs().transpose(-2, -1) * scale).amax(-1, keepdim=True) / 2
        half = ex.flash_attention(q, k, v, causal=True, block_size=8)
        call = ex.last_call
        pair(half)
        wide = ex.flash_attention(*(t.to(torch.float64) for t in (q, k, v)), causal=True, block_size=8)
        pair(wide)
        relation = f"in {str(dtype).removeprefix('torch.')} should give your own float64 result, rounded"
        agrees(half[0], call, wide[0], relation, ex, dtype=dtype, finite=True, part=0, what="out", magnitude=mag)
        # the same half inputs, statistics in float32: lse to float32's accuracy (float16 statistics miss it)
        agrees(half[1], call, wide[1], relation, ex, dtype=torch.float32, finite=True, part=1, what="lse",
               magnitude=mag[..., 0])


@graded("work", 1.5)
def test_never_holds_the_score_matrix(ex, rng):
    """at L = S = 1024 no tensor made inside the call holds L·S/8 elements or more"""
    L = S = 1024
    q, k, v = qkv(rng, 1, 1, L, S, 64)
    check(ex, ex.flash_attention(q, k, v, block_size=128), q, k, v)   # 128: fewer tiles, same point
    largest = ex.box.meta.get("largest", 0)
    if largest >= L * S // 8:
        full = largest >= L * S // 2
        fail(f"At L = S = {L} (block_size 128) your code made a tensor of {largest:,} elements; the limit is "
             f"L·S/8 = {L * S // 8:,}." + ("" if full else
                                          " Keep every intermediate of a tile small: one (block_size, block_size) "
                                          "tile of scores, products with @ or matmul rather than broadcast "
                                          "(block, block, d) elementwise products, no (L, S) mask."),
             mistake=FULL_MATRIX_MISTAKE if full else None)


@graded("work", 1.5)
def test_causal_skips_masked_blocks(ex, rng):
    """under causal, key blocks that are wholly masked are skipped: a little over half the work remains"""
    L, block = 256, 32
    q, k, v = qkv(rng, 1, 1, L, L, 32)
    check(ex, ex.flash_attention(q, k, v, causal=True, block_size=block), q, k, v, causal=True)
    causal = ex.box.meta.get("work", 0)
    check(ex, ex.flash_attention(q, k, v, block_size=block), q, k, v)
    full = ex.box.meta.get("work", 0)
    # work: every matrix product's flops and every other operation's elements, counted by the
    # sandbox at the aten level, whatever route the code took to them
    ratio = causal / max(full, 1)
    if ratio > 0.75:
        fail(f"At L = S = {L} with block_size {block}, causal attention did {ratio:.0%} of the non-causal work; "
             f"with skipping it is about 56%.", mistake=NO_SKIP_MISTAKE)


@graded("work", 0.7)
def test_no_python_loops(ex, rng):
    """dispatches as many tensor operations for 8 heads or batches as for 2: only the blocks are looped over"""
    def call(B, H):
        ex.flash_attention(*qkv(rng, B, H, 8, 8, 4), causal=True, block_size=4)
    no_loops(ex, call, {"B": (2, 8), "H": (2, 8)})


@graded("rules", 0.5)
def test_no_library_softmax(ex, rng):
    """is built without a library softmax, log-softmax or logsumexp"""
    q, k, v = qkv(rng, 1, 1, 3, 3, 4)
    ex.flash_attention(q, k, v)
    rules_respected(ex)


@graded("edge", 0.25, checks="device")
def test_results_live_on_the_inputs_device(ex, rng):
    """out and lse, and every running statistic, live on the inputs' device (checked on the meta device)"""
    q, k, v = qkv(rng, 1, 1, 6, 9, 4)   # fixed sizes, as the point is: the same on every seed
    devices_kept(ex, "flash_attention", q, k, v, causal=True, block_size=4)
