"""Hidden tests for exercise 11: grouped-query and multi-query attention, and the KV cache size."""

import math

import torch
import torch.nn.functional as F

from grader.checks import no_loops
from grader.checks import (Attending, Mistake, as_tensor, attention_with_key_weights, broadcast_shape, choice, close,
                           fail, graded, keys_hidden, randint, randn, raises, rounds_own_float64, rules_respected,
                           shaped, unchanged_inputs)

TITLE = "grouped-query and multi-query attention"   # what the learner reads (README table: python -m grader.course sync)
STEP = "follow-up: GQA and MQA"
COST = 3       # its tests take about three times a typical exercise's (grading workers take the costliest first)
DTYPE_BYTES = {torch.float64: 8, torch.float32: 4, torch.float16: 2, torch.bfloat16: 2, torch.int8: 1,
               torch.uint8: 1}


# -- the right answers, in float64 ------------------------------------------------------------
def expand(x, n_rep):
    """Query head h reads kv head h // n_rep: each kv head repeated n_rep times, side by side."""
    return x.to(torch.float64).repeat_interleave(n_rep, dim=1)


def oracle(q, k, v, mask=None, scale=None, tile=False, scaled=True, late_scale=False):
    """PyTorch's own grouped-query attention (F.scaled_dot_product_attention with enable_gqa; its mask means
    'may attend'). The known slips: tile, kv heads tiled (query head h reads kv head h % H_kv); late_scale,
    the blocked scores filled first, then scaled."""
    n_rep = q.shape[1] // k.shape[1]
    if not scaled:
        scale = 1.0
    q, k, v = (t.to(torch.float64) for t in (q, k, v))
    grow = (lambda x: x.repeat(1, n_rep, 1, 1)) if tile else (lambda x: x.repeat_interleave(n_rep, dim=1))
    if late_scale:
        s = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
        scores = q @ grow(k).transpose(-2, -1)
        if mask is not None:
            scores = scores.masked_fill(mask, torch.finfo(torch.float64).min)
        return torch.softmax(scores * s, dim=-1) @ grow(v)
    if tile:
        k, v = grow(k), grow(v)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else ~mask, scale=scale,
                                          enable_gqa=not tile)


def attending(q, k, v, mask=None, scale=None):
    """For a wrong output: attention recomputed with other key weights, to name the keys it really attended to."""
    n_rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(n_rep, dim=1), v.repeat_interleave(n_rep, dim=1)
    L, S = q.shape[-2], k.shape[-2]
    seen = torch.ones(L, S, dtype=torch.bool) if mask is None else ~mask
    seen = seen.expand(broadcast_shape(seen.shape, q.shape[:-2] + (L, S)))
    return Attending(lambda weights: attention_with_key_weights(q, k, v, weights, scale), seen)


def hand_count(batch, seq_len, num_layers, num_kv_heads, head_dim, dtype):
    """Keys and values (2), per layer, kv head, token and feature, times the element size."""
    return 2 * batch * seq_len * num_layers * num_kv_heads * head_dim * DTYPE_BYTES[dtype]


# -- known mistakes ---------------------------------------------------------------------------
TILE = ("`repeat` (tile) instead of `repeat_interleave`: query head h read kv head h % H_kv, "
        "not h // n_rep")
TILE_FIX = ("The n_rep query heads of one group must share one kv head: repeat each kv head n_rep times side "
            "by side (x.repeat_interleave(n_rep, dim=1), or x[:, :, None].expand(B, H_kv, n_rep, S, d).reshape"
            "(B, H_kv * n_rep, S, d)). `x.repeat(1, n_rep, 1, 1)` tiles the whole stack instead.")
NO_TWO = "KV cache size without the factor 2 (only the keys, or only the values, counted)"

MISTAKES = [
    Mistake("repeat_kv", TILE, STEP, TILE_FIX, lambda x, n_rep: x.repeat(1, n_rep, 1, 1), key="tile_instead_of_interleave"),
    Mistake("grouped_query_attention", TILE, STEP, TILE_FIX,
            lambda q, k, v, mask=None, scale=None: oracle(q, k, v, mask, scale, tile=True), key="tile_instead_of_interleave"),
    Mistake("grouped_query_attention", "the scale is applied after the mask fill", STEP,
            "Scale the scores first, then fill the blocked ones: scale=0 turns a filled score back into 0 (the "
            "blocked key gets weight again), and a scale above 1 turns finfo(dtype).min into -inf (a fully masked "
            "row becomes NaN).",
            lambda q, k, v, mask=None, scale=None: oracle(q, k, v, mask, scale, late_scale=True), key="scale_after_mask"),
    Mistake("grouped_query_attention", "no scaling by 1/sqrt(d_k)", STEP,
            "Divide the scores by sqrt(d_k) (or multiply by `scale` when one is given) before the softmax.",
            lambda q, k, v, mask=None, scale=None: oracle(q, k, v, mask, scale, scaled=False), key="no_scaling"),
    Mistake("grouped_query_attention", "the `scale` argument is ignored", STEP,
            "An explicit scale replaces 1/sqrt(d_k); only scale=None means the default.",
            lambda q, k, v, mask=None, scale=None: oracle(q, k, v, mask, None), key="scale_ignored"),
    Mistake("grouped_query_attention", "the mask is ignored", STEP,
            "Fill the blocked scores (mask True) with torch.finfo(dtype).min before the softmax.",
            lambda q, k, v, mask=None, scale=None: oracle(q, k, v, None, scale), key="mask_ignored"),
    Mistake("kv_cache_bytes", NO_TWO, STEP,
            "A cache stores keys and values: multiply by 2.",
            lambda batch, seq_len, num_layers, num_kv_heads, head_dim, dtype:
            hand_count(batch, seq_len, num_layers, num_kv_heads, head_dim, dtype) // 2, key="cache_bytes_no_factor_two"),
    Mistake("kv_cache_bytes", "the element size of the dtype is ignored (elements counted, not bytes)", STEP,
            "Multiply by the bytes per element: torch.empty((), dtype=dtype).element_size() (2 for float16).",
            lambda batch, seq_len, num_layers, num_kv_heads, head_dim, dtype:
            hand_count(batch, seq_len, num_layers, num_kv_heads, head_dim, dtype) // DTYPE_BYTES[dtype], key="cache_elements_not_bytes"),
    Mistake("kv_cache_bytes", "bits counted instead of bytes", STEP,
            "element_size() is in bytes already; do not multiply by 8.",
            lambda batch, seq_len, num_layers, num_kv_heads, head_dim, dtype:
            hand_count(batch, seq_len, num_layers, num_kv_heads, head_dim, dtype) * 8, key="cache_bits_not_bytes"),
]


# -- inputs -----------------------------------------------------------------------------------
def qkv(rng, B, H_q, H_kv, L, S, d_k, d_v=None, dtype=torch.float32, scale=1.0):
    return (randn(rng, B, H_q, L, d_k, dtype=dtype, scale=scale), randn(rng, B, H_kv, S, d_k, dtype=dtype, scale=scale),
            randn(rng, B, H_kv, S, d_v or d_k, dtype=dtype))


def close_race(H_q, H_kv):
    """The same inputs on every seed: 16 queries per head, each torn between two keys whose scores differ by
    about 0.1, with values 2000 and 0: out needs the scores to float64's accuracy (a float32 path misses)."""
    g = torch.Generator().manual_seed(20)
    q = randn(g, 1, H_q, 16, 16, dtype=torch.float64, scale=10.0)
    k = randn(g, 1, H_kv, 1, 16, dtype=torch.float64, scale=10.0).expand(1, H_kv, 2, 16).clone()
    k[..., 1, :] += randn(g, H_kv, 16, dtype=torch.float64, scale=0.01)
    v = torch.tensor([2e3, 0.0], dtype=torch.float64)[:, None].expand(1, H_kv, 2, 3).clone()
    return q, k, v


def random_mask(rng, *shape):
    """A bool mask (True = blocked) in which every query row keeps at least one key."""
    m = torch.rand(*shape, generator=rng) < 0.4
    keep = torch.randint(0, shape[-1], shape[:-1], generator=rng)
    return m.scatter(-1, keep[..., None], False)


def grouped(rng):
    """H_kv >= 2 and n_rep >= 2: the only case where tiling and interleaving differ."""
    H_kv = randint(rng, 2, 4)
    return H_kv * randint(rng, 2, 4), H_kv


# -- tests ------------------------------------------------------------------------------------
def repeated(ex, rng):
    """repeat_kv on float32, float16 and float64 heads (n_rep = 1 last), checked against expand."""
    for dtype in (torch.float32, torch.float16):
        H_kv, n_rep = randint(rng, 2, 4), randint(rng, 2, 4)
        x = randn(rng, randint(rng, 1, 3), H_kv, randint(rng, 1, 6), randint(rng, 2, 6), dtype=dtype)
        close(ex.repeat_kv(x, n_rep), expand(x, n_rep), ex, dtype=dtype)
    x = randn(rng, 2, 3, 4, 5, dtype=torch.float64)
    close(ex.repeat_kv(x, 1), x, ex)


@graded("shapes", 0.5)
def test_repeat_kv_shape(ex, rng):
    """repeat_kv gives (B, H_kv·n_rep, S, d) in the input's dtype"""
    for dtype in (torch.float32, torch.float16, torch.float64):
        B, H_kv, n_rep, S, d = randint(rng, 1, 3), randint(rng, 2, 4), randint(rng, 1, 4), randint(rng, 1, 6), 3
        shaped(ex.repeat_kv(randn(rng, B, H_kv, S, d, dtype=dtype), n_rep), (B, H_kv * n_rep, S, d), dtype, ex)


@graded("equivalence", 0.5)
def test_repeat_kv_order(ex, rng):
    """repeat_kv puts kv head h // n_rep at head h: each kv head n_rep times side by side"""
    repeated(ex, rng)


@graded("equivalence", 2.5)
def test_grouping_matches_expanded_attention(ex, rng):
    """query head h attends with kv head h // n_rep (matches SDPA on repeat_interleave'd heads)"""
    for dtype in (torch.float64, torch.float32):
        H_q, H_kv = grouped(rng)
        B, L, S, d = randint(rng, 1, 3), randint(rng, 1, 6), randint(rng, 1, 7), randint(rng, 2, 9)
        q, k, v = qkv(rng, B, H_q, H_kv, L, S, d, randint(rng, 2, 9), dtype=dtype)
        close(ex.grouped_query_attention(q, k, v), oracle(q, k, v), ex, dtype=dtype, attending=attending(q, k, v))
    q, k, v = qkv(rng, 2, 6, 2, 3, 5, 4, dtype=torch.float64)
    scale = choice(rng, [0.25, 1.5, 0.0])
    close(ex.grouped_query_attention(q, k, v, scale=scale), oracle(q, k, v, scale=scale), ex,
          attending=attending(q, k, v, scale=scale))
    q, k, v = close_race(4, 2)
    close(ex.grouped_query_attention(q, k, v), oracle(q, k, v), ex, attending=attending(q, k, v))


@graded("equivalence", 1.5)
def test_multi_query_and_multi_head_extremes(ex, rng):
    """H_kv = 1 is multi-query attention; H_kv = H_q is ordinary multi-head attention"""
    for H_kv in (1, None):
        H_q = randint(rng, 2, 6)
        H_kv = H_kv or H_q
        q, k, v = qkv(rng, randint(rng, 1, 3), H_q, H_kv, randint(rng, 1, 5), randint(rng, 1, 6), 4,
                      dtype=torch.float64)
        close(ex.grouped_query_attention(q, k, v), oracle(q, k, v), ex, attending=attending(q, k, v))
    for H_q, H_kv in ((2, 1), (2, 2)):
        q, k, v = close_race(H_q, H_kv)
        close(ex.grouped_query_attention(q, k, v), oracle(q, k, v), ex, attending=attending(q, k, v))


@graded("masking", 2)
def test_masks_broadcast_over_query_heads(ex, rng):
    """applies causal, padding and per-head masks (True = blocked) to every query head"""
    H_q, H_kv = grouped(rng)
    B, L, S = 2, randint(rng, 2, 5), randint(rng, 5, 8)
    q, k, v = qkv(rng, B, H_q, H_kv, L, S, 4, dtype=torch.float64)
    causal = torch.ones(L, S, dtype=torch.bool).triu(S - L + 1)
    padding = torch.zeros(B, 1, 1, S, dtype=torch.bool)
    padding[1, ..., S - 2:] = True
    per_head = torch.zeros(B, H_q, L, S, dtype=torch.bool)
    per_head[:, ::2, :, 0] = per_head[:, 1::2, :, -1] = True     # query heads of one group see different keys
    for mask in (causal, padding, per_head, random_mask(rng, B, H_q, L, S)):
        # a kv head's key reaches every query head of its group: judged per query head
        full = mask.expand(B, H_q, L, S)
        for h in (0, 1, H_q - 1):      # two heads of the first group, one of the last
            def attend(k_h, v_h, h=h):
                k2, v2 = k.clone(), v.clone()
                k2[:, h // (H_q // H_kv)], v2[:, h // (H_q // H_kv)] = k_h, v_h
                return as_tensor(ex.grouped_query_attention(q, k2, v2, mask=mask))[:, h]
            keys_hidden(ex, attend, k[:, h // (H_q // H_kv)], v[:, h // (H_q // H_kv)], full[:, h])


@graded("masking", 1)
def test_explicit_scale_with_masks(ex, rng):
    """with an explicit scale of 0 or above 1, blocked keys stay blocked and a fully masked row stays finite"""
    H_q, H_kv = grouped(rng)
    L, S = randint(rng, 3, 6), randint(rng, 3, 7)
    q, k, v = qkv(rng, 2, H_q, H_kv, L, S, 4, dtype=torch.float64, scale=1.5)
    mask = torch.zeros(2, 1, L, S, dtype=torch.bool)    # the same on every seed:
    mask[:, :, 0] = True                                # query 0 sees no key,
    mask[:, :, 1:, 0] = True                            # key 0 is hidden from every other query
    seen = ~mask.all(-1, keepdim=True).expand(2, H_q, L, 1)
    for scale in (2.0, 0.0, 4.0):
        out = ex.grouped_query_attention(q, k, v, mask=mask, scale=scale)
        if isinstance(out, torch.Tensor) and out.shape == (2, H_q, L, v.shape[-1]) and not out.isfinite().all():
            close(out, oracle(q, k, v, mask, scale).nan_to_num(0.0), ex, dtype=torch.float64)
        close(out, oracle(q, k, v, mask, scale), ex, dtype=torch.float64, mask=seen,
              attending=attending(q, k, v, mask, scale))


@graded("fp16", 1)
def test_half_precision_keeps_dtype(ex, rng):
    """keeps float16 and bfloat16, finite and accurate"""
    for dtype in (torch.float16, torch.bfloat16):
        H_q, H_kv = grouped(rng)
        q, k, v = qkv(rng, 2, H_q, H_kv, 4, 6, 8, dtype=dtype)
        mask = torch.ones(4, 6, dtype=torch.bool).triu(3)
        rounds_own_float64(ex, "grouped_query_attention", q, k, v, mask=mask, dtype=dtype)


@graded("edge", 1)
def test_rejects_heads_that_do_not_divide(ex, rng):
    """raises ValueError when H_q is not a multiple of H_kv"""
    for H_q, H_kv in ((6, 4), (3, 2), (2, 4)):
        q, k, v = qkv(rng, 1, H_q, H_kv, 2, 3, 4)
        raises(ex, "ValueError", "grouped_query_attention", q, k, v,
               why=f" ({H_q} query heads cannot be shared evenly among {H_kv} kv heads)")


@graded("edge", 0.5, checks="inputs")
def test_inputs_left_alone(ex, rng):
    """q, k and v are not modified"""
    q, k, v = qkv(rng, 1, 2, 2, 3, 3, 4, dtype=torch.float64)
    unchanged_inputs(ex, "grouped_query_attention", q, k, v)


def _check_bytes(ex, args):
    got = ex.kv_cache_bytes(*args)
    want = hand_count(*args)
    call = f"kv_cache_bytes({', '.join(map(str, args))})"
    if isinstance(got, bool) or not isinstance(got, int):
        fail(f"{call} should return an int (a number of bytes), got {type(got).__name__} {got!r}"[:200])
    if got != want:
        named = next((m for m in MISTAKES if m.function == "kv_cache_bytes" and m.wrong(*args) == got), None)
        fail(f"{call} returned {got:,} bytes; expected {want:,} = 2 (keys and values) × batch × seq_len × "
             f"layers × kv heads × head_dim × {DTYPE_BYTES[args[-1]]} bytes per element.", mistake=named)


@graded("equivalence", 1.5)
def test_kv_cache_bytes_counts_keys_and_values(ex, rng):
    """kv_cache_bytes counts keys and values in bytes; GQA shrinks the cache by H_q / H_kv"""
    layers, head_dim, seq = randint(rng, 2, 33), choice(rng, [64, 128]), randint(rng, 100, 5000)
    H_q, H_kv = 32, choice(rng, [8, 4])
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8):   # float32 first: 2 != 4 bytes; int8: a quantised cache
        batch = randint(rng, 1, 9)
        _check_bytes(ex, (batch, seq, layers, H_kv, head_dim, dtype))
        _check_bytes(ex, (batch, seq, layers, H_q, head_dim, dtype))
    mha = ex.kv_cache_bytes(1, 4096, 80, 64, 128, torch.float16)
    gqa = ex.kv_cache_bytes(1, 4096, 80, 8, 128, torch.float16)
    if not (isinstance(mha, int) and isinstance(gqa, int)) or mha != 8 * gqa or gqa != 1_342_177_280:
        fail(f"A 70B-style model (80 layers, head_dim 128, 4096 tokens, float16) caches 1,342,177,280 bytes "
             f"with 8 kv heads and 8 times that with 64; your kv_cache_bytes gave {gqa!r} and {mha!r}.")


@graded("work", 0.7)
def test_no_python_loops(ex, rng):
    """dispatches as many tensor operations for 8 key/value heads, batches or queries as for 2: no Python loop"""
    def call(B, H, L):
        ex.grouped_query_attention(*qkv(rng, B, 2 * H, H, L, L + 1, 4))
    no_loops(ex, call, {"B": (2, 8), "H": (2, 8), "L": (2, 8)})


@graded("rules", 0.5)
def test_no_fused_attention(ex, rng):
    """is built without a fused attention kernel"""
    q, k, v = qkv(rng, 1, 4, 2, 3, 3, 4)
    ex.grouped_query_attention(q, k, v)
    rules_respected(ex)
