"""Hidden tests for exercise 10: the multi-head attention module (all eight checklist steps)."""
import math
import weakref

import torch
import torch.nn.functional as F
from torch import nn

from grader.checks import no_loops
from grader.checks import (Fail, Mistake, agrees, choice, close, describe_call, fail, graded, keys_hidden, raises, randint,
                           randn, rounds_own_float64, rules_respected, shaped)
from grader.sandbox import SubmissionError

TITLE = "multi-head attention module"   # what the learner reads (README table: python -m grader.course sync)
COST = 4       # its tests take about four times a typical exercise's (grading workers take the costliest first)
STEP_PROJECT = "1. Project: linear layers for Q, K, V"
STEP_SPLIT = "2. Split heads"
STEP_SCORES = "3. Scores: Q @ K^T / sqrt(d_k)"
STEP_MASK = "4. Mask before softmax"
STEP_VALUES = "6. Weight the values"
STEP_MERGE = "7. Merge heads"
STEP_OUT = "8. Output projection"
STEP_MODULE = "1-8. The multi-head attention module"
HALF = (torch.float16, torch.bfloat16)
NAMES = ("q_proj", "k_proj", "v_proj", "out_proj")


# -- probes: they run in the sandbox, on the learner's module ---------------------------------
def mha_forward(module, query, weights, num_heads, bias=True, **forward_kwargs):
    """Builds MultiHeadAttention(D, num_heads, bias) in query's dtype, loads `weights`
    ([w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o]) and calls forward in eval mode."""
    m = module.MultiHeadAttention(query.shape[-1], num_heads, bias)
    m = m.to(query.dtype)
    with torch.no_grad():
        for i, name in enumerate(NAMES):
            layer = getattr(m, name)
            layer.weight.copy_(weights[2 * i])
            if bias:
                layer.bias.copy_(weights[2 * i + 1])
    m.eval()
    with torch.no_grad():
        return m(query, **forward_kwargs)


def mha_layers(module, d_model, num_heads, bias):
    """What the learner's __init__ built: each projection's class names and parameter shapes."""
    m = module.MultiHeadAttention(d_model, num_heads, bias)
    found = {}
    for name in NAMES:
        layer = getattr(m, name, None)
        found[name] = None if layer is None else {
            "classes": [c.__name__ for c in type(layer).__mro__],
            "weight": list(layer.weight.shape) if getattr(layer, "weight", None) is not None else None,
            "bias": list(layer.bias.shape) if getattr(layer, "bias", None) is not None else None}
    return found


# -- the right answer: torch.nn.MultiheadAttention in float64 -------------------------------------
def _64(t):
    return None if t is None else t.to(torch.float64)


def causal(L, S):
    """Bottom-right aligned (as in exercise 04): key j blocked for query i when j > i + (S - L)."""
    i, j = torch.arange(L)[:, None], torch.arange(S)[None, :]
    return j > i + (S - L)


def combined_mask(B, H, L, S, key_padding_mask=None, attn_mask=None, is_causal=False):
    """(B, H, L, S) bool, True = blocked by any of the masks."""
    mask = torch.zeros(B, H, L, S, dtype=torch.bool)
    if attn_mask is not None:
        mask = mask | attn_mask
    if is_causal:
        mask = mask | causal(L, S)
    if key_padding_mask is not None:
        mask = mask | key_padding_mask[:, None, None, :]
    return mask


def oracle(query, weights, num_heads, bias=True, key=None, value=None, key_padding_mask=None, attn_mask=None,
           is_causal=False, need_weights=False):
    """nn.MultiheadAttention(D, H, bias, batch_first=True) in eval mode, float64, its in_proj split in three.
    The masks are spelled as nn.MultiheadAttention wants them: one bool attn_mask (B·H, L, S), True = not allowed, holding
    attn_mask, the bottom-right causal mask (built by hand: nn.MultiheadAttention's is_causal is only a hint) and the key
    padding (ORed in here rather than passed as key_padding_mask, whose check imports sympy: a second of
    grading time for the same True = ignore semantics). Returns (out, weights (B, H, L, S)); rows that see
    no key are NaN here."""
    q = _64(query)
    k = q if key is None else _64(key)
    v = k if value is None else _64(value)
    B, L, D = q.shape
    S = k.shape[1]
    ref = nn.MultiheadAttention(D, num_heads, bias=bias, batch_first=True, dtype=torch.float64).eval()
    w = [_64(t) for t in weights]
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([w[0], w[2], w[4]]))
        ref.out_proj.weight.copy_(w[6])
        if bias:
            ref.in_proj_bias.copy_(torch.cat([w[1], w[3], w[5]]))
            ref.out_proj.bias.copy_(w[7])
    mask = None
    if attn_mask is not None or is_causal or key_padding_mask is not None:
        mask = combined_mask(B, num_heads, L, S, key_padding_mask, attn_mask, is_causal).reshape(B * num_heads, L, S)
    with torch.enable_grad():    # parameters that need grad keep PyTorch off its fast path
        out, per_head = ref(q, k, v, attn_mask=mask, need_weights=True, average_attn_weights=False)
    return out.detach(), per_head.detach()


# -- known wrong ways, written out in float64 ------------------------------------------------------
def mine(query, weights, num_heads, bias=True, key=None, value=None, key_padding_mask=None, attn_mask=None,
         is_causal=False, need_weights=False, *, average=False, pad_queries=False, pad_heads=False, top_left=False,
         combine="all", skip_out=False, mix="v", scale_by="head", split_view=False, merge_view=False,
         value_from="key"):
    q_in = _64(query)
    k_in = q_in if key is None else _64(key)
    v_in = (k_in if value_from == "key" else q_in) if value is None else _64(value)
    B, L, D = q_in.shape
    S = k_in.shape[1]
    H, d = num_heads, D // num_heads
    w = [_64(t) for t in weights]

    w = w + [None] * (8 - len(w))

    def lin(x, i):
        return F.linear(x, w[2 * i], w[2 * i + 1] if bias else None)

    def split(x):
        n = x.shape[1]
        return x.reshape(B, H, n, d) if split_view else x.unflatten(-1, (H, d)).transpose(1, 2)

    q, k, v = split(lin(q_in, 0)), split(lin(k_in, 1)), split(lin(v_in, 2))
    scale = {"head": 1 / math.sqrt(d), "model": 1 / math.sqrt(D), "none": 1.0}[scale_by]
    mask = torch.zeros(B, H, L, S, dtype=torch.bool)
    use_attn = attn_mask is not None and not (combine == "causal_over_attn" and is_causal)
    use_causal = is_causal and not (combine == "attn_over_causal" and attn_mask is not None)
    use_pad = key_padding_mask is not None and not (combine == "no_padding_with_attn" and attn_mask is not None)
    if use_attn:
        mask = mask | attn_mask
    if use_causal:
        mask = mask | torch.ones(L, S, dtype=torch.bool).triu(1 if top_left else S - L + 1)
    if use_pad:
        if pad_queries:
            mask = mask | key_padding_mask[:, None, :, None]
        elif pad_heads:
            mask = mask | key_padding_mask[:, None, :]
        else:
            mask = mask | key_padding_mask[:, None, None, :]
    # PyTorch's attention with a finite additive mask (a blocked row comes out uniform, not NaN); the
    # probabilities are its output for identity values.
    bias_mask = torch.zeros(B, H, L, S, dtype=torch.float64).masked_fill(mask, torch.finfo(torch.float64).min)
    out = F.scaled_dot_product_attention(q, k, v if mix == "v" else k, attn_mask=bias_mask, scale=scale)
    probs = F.scaled_dot_product_attention(q, k, torch.eye(S, dtype=torch.float64).expand(B, H, S, S),
                                           attn_mask=bias_mask, scale=scale)
    out = out.reshape(B, L, D) if merge_view else out.transpose(1, 2).flatten(2)
    if not skip_out:
        out = lin(out, 3)
    if not need_weights:
        return out
    return out, (probs.mean(1) if average else probs)


def wrong(**flags):
    return lambda *args, **kwargs: mine(*args, **kwargs, **flags)


NOT_COMBINED = "the masks are not combined (one mask replaces another instead of adding to it)"
SHAPES = Mistake(
    "mha_forward", "correct only when the batch is 1, or only when L == S", STEP_MODULE,
    "Take B and L from query and S from key (query.shape, key.shape): keys may be fewer or more than queries, "
    "and the batch may hold many sequences. Lift key_padding_mask (B, S) to (B, 1, 1, S) so that its batch axis "
    "lines up with the scores' (B, H, L, S).",
    wrong(pad_heads=True), key="sizes_hardcoded")

MISTAKES = [
    Mistake("mha_forward", "`need_weights` averaged over heads", STEP_MODULE,
            "Return the weights per head, (B, H, L, S), as nn.MultiheadAttention does with "
            "average_attn_weights=False: do not take the mean over the head axis.",
            wrong(average=True), key="weights_averaged"),
    Mistake("mha_forward", "key padding mask applied to queries", STEP_MASK,
            "key_padding_mask (B, S) marks padded keys: lift it to (B, 1, 1, S) so that it blocks columns (keys) "
            "of the (B, H, L, S) scores, for every query.",
            wrong(pad_queries=True), key="padding_on_queries"),
    Mistake("mha_forward", NOT_COMBINED, STEP_MASK,
            "is_causal must add the causal mask to attn_mask, not be dropped when attn_mask is given: OR them.",
            wrong(combine="attn_over_causal"), key="masks_not_combined"),
    Mistake("mha_forward", NOT_COMBINED, STEP_MASK,
            "attn_mask must still apply when is_causal is set: OR the causal mask into it.",
            wrong(combine="causal_over_attn"), key="masks_not_combined"),
    Mistake("mha_forward", NOT_COMBINED, STEP_MASK,
            "key_padding_mask must still apply when attn_mask is given: a key is blocked if any mask blocks it.",
            wrong(combine="no_padding_with_attn"), key="masks_not_combined"),
    Mistake("mha_forward", "causal mask aligned top-left", STEP_MASK,
            "With L != S the causal mask is aligned bottom-right: key j is blocked for query i when "
            "j > i + (S - L), so the last query sees every key.",
            wrong(top_left=True), key="causal_top_left"),
    Mistake("mha_forward", "the output projection (out_proj) is skipped", STEP_OUT,
            "After merging the heads, pass the result through self.out_proj: it mixes the heads.",
            wrong(skip_out=True), key="out_proj_skipped"),
    Mistake("mha_forward", "probabilities multiplied with K instead of V", STEP_VALUES,
            "The output mixes the values: weights @ v, with v from self.v_proj(value).",
            wrong(mix="k"), key="probs_times_k"),
    Mistake("mha_forward", "scores scaled by 1/sqrt(d_model) instead of 1/sqrt(head_dim)", STEP_SCORES,
            "Each head's keys have head_dim = d_model // num_heads features: divide by sqrt(head_dim).",
            wrong(scale_by="model"), key="scaled_by_d_model"),
    Mistake("mha_forward", "no scaling by 1/sqrt(head_dim)", STEP_SCORES,
            "Divide the scores by sqrt(head_dim): the dot product's variance grows with the head size.",
            wrong(scale_by="none"), key="no_scaling"),
    Mistake("mha_forward", "heads split with `view(B, H, L, head_dim)` without the transpose", STEP_SPLIT,
            "Reshape to (B, L, H, head_dim) first, then transpose(1, 2): a bare view mixes the features of "
            "different tokens into one head.",
            wrong(split_view=True), key="split_view_without_transpose"),
    Mistake("mha_forward", "heads merged without transposing back first", STEP_MERGE,
            "Transpose (B, H, L, head_dim) back to (B, L, H, head_dim) before reshaping to (B, L, D).",
            wrong(merge_view=True), key="merge_without_transpose"),
    Mistake("mha_forward", "value defaults to query instead of key", STEP_PROJECT,
            "When only key is given (value=None), the values come from key: this module's own default "
            "(nn.MultiheadAttention has no default for value: it requires query, key and value).",
            wrong(value_from="query"), key="value_defaults_to_query"),
    SHAPES,
]


# -- inputs and checking ---------------------------------------------------------------------
def make_weights(rng, D, dtype, bias=True):
    """[w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o], nn.Linear layout (out, in); biases None without bias."""
    found = []
    for _ in NAMES:
        found.append(randn(rng, D, D, dtype=dtype, scale=1.2 / math.sqrt(D)))
        found.append(randn(rng, D, dtype=dtype, scale=0.5) if bias else None)
    return found


def magnitudes(query, weights, num_heads, bias, key, value, mask, probs):
    """Sizes of the terms behind each result (for half-precision tolerances), from absolute values."""
    q_in = _64(query).abs()
    k_in = q_in if key is None else _64(key).abs()
    v_in = k_in if value is None else _64(value).abs()
    w = [None if t is None else _64(t).abs() for t in weights]
    B, L, D = q_in.shape
    H, d = num_heads, D // num_heads

    def lin(x, i):
        y = x @ w[2 * i].T
        return y + w[2 * i + 1] if bias else y

    def split(x):
        return x.reshape(B, x.shape[1], H, d).transpose(1, 2)

    q, k, v = split(lin(q_in, 0)), split(lin(k_in, 1)), split(lin(v_in, 2))
    big = ((q @ k.transpose(-2, -1)) / math.sqrt(d)).amax(-1, keepdim=True)      # (B, H, L, 1)
    p = probs.nan_to_num(0.0)
    heads = ((p @ v) * (1 + 2 * big)).transpose(1, 2).reshape(B, L, D)
    return lin(heads, 3), p * (1 + 2 * big)


_RAN = weakref.WeakKeyDictionary()    # submission -> kinds of call that ran with B = 1 and L = S


def forward(ex, query, weights, num_heads, bias=True, **kwargs):
    """Runs the learner's module; a call with B > 1 or L != S that raises, where the same kind of call
    with B = 1 and L = S ran, is diagnosed as sizes not taken from the tensors."""
    key = kwargs.get("key")
    B, L, S = query.shape[0], query.shape[1], (query if key is None else key).shape[1]
    kind = frozenset(kwargs)
    try:
        result = ex.run(mha_forward, query, weights, num_heads, bias, **kwargs)
    except SubmissionError as e:
        if e.kind == "raised" and (B > 1 or L != S) and kind in _RAN.get(ex, ()):
            fail(f"{describe_call(ex.last_call, ex)} raised {e.message}" + (f" (at {e.where})" if e.where else "")
                 + f", though the same call ran with B = 1 and L = S (here B = {B}, L = {L}, S = {S}).",
                 mistake=SHAPES)
        raise
    if B == 1 and L == S:
        _RAN.setdefault(ex, set()).add(kind)
    return result


def pair(ex, result):
    """Fails unless the result is a pair (out, weights), as need_weights=True asks."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        fail(f"{describe_call(ex.last_call, ex)} should return a tuple (out, weights) when need_weights=True, but "
             "returned " + type(result).__name__ + (f" of {len(result)}" if isinstance(result, (tuple, list)) else ""),
             on="type")


def masks_hold(ex, query, weights, num_heads, key, value, **masks):
    """The masks as relations on the learner's own module: a key blocked (for every head) from a query
    changes nothing in that query's output, a key some head sees counts, a query that sees no key stays
    finite, and the weights of blocked keys are 0."""
    B, L, _ = query.shape
    S = key.shape[1]
    mask = combined_mask(B, num_heads, L, S, masks.get("key_padding_mask"), masks.get("attn_mask"),
                         masks.get("is_causal", False))

    def attend(k, v):
        return forward(ex, query, weights, num_heads, key=k, value=v, need_weights=True, **masks)

    def relations():
        keys_hidden(ex, attend, key, value, mask.all(1), rows=(~mask).any(-1).all(1))
        result = attend(key, value)
        pair(ex, result)
        out, probs = (torch.as_tensor(t) for t in result)
        if not out.isfinite().all():
            fail(f"{describe_call(ex.last_call, ex)}: out holds NaN or inf (queries that see no key must stay "
                 "finite).")
        seen = (~mask).any(-1, keepdim=True)
        if probs.shape == mask.shape and (probs.ne(0) & mask & seen).any():
            fail(f"{describe_call(ex.last_call, ex)}: weights is not 0 at {int((probs.ne(0) & mask & seen).sum())} "
                 "blocked keys of queries that see some key: a blocked key gets no weight.")
    try:
        relations()
    except Fail as broken:
        if broken.mistake is None:      # name it, if the reference's comparison confirms a catalogued mistake
            try:
                check(ex, attend(key, value), query, weights, num_heads, key=key, value=value, need_weights=True,
                      **masks)
            except Fail as named:
                known = next((m for m in MISTAKES if m.key == named.mistake), None)
                if known is not None:
                    fail(str(broken), mistake=known)
        raise


def check(ex, result, query, weights, num_heads, bias=True, **kwargs):
    """Compares with nn.MultiheadAttention on every query row that sees a key; other rows must be finite."""
    need = kwargs.get("need_weights", False)
    where = describe_call(ex.last_call, ex)
    if need:
        pair(ex, result)
    dtype = query.dtype
    out, probs = oracle(query, weights, num_heads, bias, **kwargs)
    B, L, D = query.shape
    key = kwargs.get("key")
    S = (query if key is None else key).shape[1]
    mask = combined_mask(B, num_heads, L, S, kwargs.get("key_padding_mask"), kwargs.get("attn_mask"),
                         kwargs.get("is_causal", False))
    seen_heads = (~mask).any(-1, keepdim=True)                                    # (B, H, L, 1)
    seen = seen_heads.all(1)                                                      # (B, L, 1): every head sees a key
    mag_out, mag_probs = magnitudes(query, weights, num_heads, bias, key, kwargs.get("value"), mask, probs)
    parts = [(result[0] if need else result, out, "out", seen, mag_out)]
    if need:
        parts.append((result[1], probs, "weights", seen_heads, mag_probs))
    for part, (actual, expected, what, rows, mag) in enumerate(parts):
        if isinstance(actual, torch.Tensor) and tuple(actual.shape) == tuple(expected.shape):
            a = actual.to(torch.float64)
            expected = torch.where(rows.expand(expected.shape), expected, torch.where(a.isfinite(), a, 0.0))
        close(actual, expected, ex, dtype=dtype, part=part if need else None, what=what,
              magnitude=mag if dtype in HALF else None)


def attend(ex, query, weights, num_heads, bias=True, **kwargs):
    check(ex, forward(ex, query, weights, num_heads, bias, **kwargs), query, weights, num_heads, bias, **kwargs)


def sizes(rng):
    """num_heads >= 2, head_dim >= 2, and L != S."""
    H, d = choice(rng, (2, 3, 4)), randint(rng, 2, 4)
    L, S = randint(rng, 2, 6), randint(rng, 2, 7)
    while S == L:
        S = randint(rng, 2, 7)
    return H, d, L, S


def padding(rng, B, S, full=False):
    """key_padding_mask (B, S), True = padding, random lengths >= 1; item 1 is padded for sure, and with
    `full` item 0 is not padded at all while item 2 is all padding (its queries see no key)."""
    lengths = torch.randint(1, S + 1, (B,), generator=rng)
    mask = torch.arange(S)[None, :] >= lengths[:, None]
    if B > 1:
        mask[1, -1] = True
    if full:
        mask[0] = False
        mask[2] = True
    return mask


# -- tests -------------------------------------------------------------------------------------
@graded("shapes", 1.5)
def test_shapes_of_out_and_weights(ex, rng):
    """returns out (B, L, D), and (out, weights (B, H, L, S)) per head when need_weights=True"""
    H, d, L, S = sizes(rng)
    D = H * d
    weights = make_weights(rng, D, torch.float32)
    shaped(forward(ex, randn(rng, 1, L, D), weights, H), (1, L, D), torch.float32, ex, what="out")
    B = randint(rng, 2, 4)
    result = forward(ex, randn(rng, B, L, D), weights, H, key=randn(rng, B, S, D), need_weights=True)
    pair(ex, result)
    shaped(result[0], (B, L, D), torch.float32, ex, what="out", part=0)
    shaped(result[1], (B, H, L, S), torch.float32, ex, what="weights", part=1)


@graded("equivalence", 2.5)
def test_self_attention_matches_torch(ex, rng):
    """self-attention matches nn.MultiheadAttention(batch_first=True) with the same weights, with and without bias"""
    for bias, need in ((True, True), (False, False)):
        H, d, L, _ = sizes(rng)
        D = H * d
        B = randint(rng, 2, 4)
        attend(ex, randn(rng, B, L, D, dtype=torch.float64), make_weights(rng, D, torch.float64, bias), H, bias,
               need_weights=need)


@graded("equivalence", 2)
def test_cross_attention_matches_torch(ex, rng):
    """cross-attention: key and value (B, S, D) with S != L, B > 1, as nn.MultiheadAttention"""
    H, d, L, S = sizes(rng)
    D = H * d
    weights = make_weights(rng, D, torch.float64)
    x = randn(rng, 1, L, D, dtype=torch.float64)
    attend(ex, x, weights, H, key=randn(rng, 1, L, D, dtype=torch.float64),
           value=randn(rng, 1, L, D, dtype=torch.float64), need_weights=True)
    B = randint(rng, 2, 4)
    attend(ex, randn(rng, B, L, D, dtype=torch.float64), weights, H, key=randn(rng, B, S, D, dtype=torch.float64),
           value=randn(rng, B, S, D, dtype=torch.float64), need_weights=True)


@graded("masking", 2)
def test_key_padding_and_attn_mask_combine(ex, rng):
    """key_padding_mask (B, S) hides keys from every query, combined with an (L, S) attn_mask"""
    H, d, L, _ = sizes(rng)
    L, D = max(L, 3), H * d
    weights = make_weights(rng, D, torch.float64)
    for B in (1, randint(rng, 2, 4)):
        attn = torch.rand(L, L, generator=rng) < 0.25
        blocked = randint(rng, 0, L - 1)
        attn[:, [0, -1]] = False        # every query sees key 0 (never padding); only padding hides the last ...
        attn[blocked] = True            # ... and one query (never the last) is blocked everywhere: the last
        # query is padding as a key, so padding applied to queries would blank a row that attn_mask leaves open
        pad = padding(rng, B, L)
        pad[:, -1] = True                                   # so dropping either mask changes the result
        if B > 1:                                           # and items differ: padding is per item
            pad[0, :-1], pad[-1, 1:] = False, True
        query, key, value = (randn(rng, B, L, D, dtype=torch.float64) for _ in range(3))
        masks_hold(ex, query, weights, H, key, value, key_padding_mask=pad, attn_mask=attn)
    # every seed: a padded key whose logits reach ±1e5 stays hidden (an additive −1e4 would let it through)
    for sign in (1e5, -1e5):
        huge = key.clone()
        huge[:, -1] *= sign
        masks_hold(ex, query, weights, H, huge, value, key_padding_mask=pad, attn_mask=attn)


@graded("masking", 2)
def test_causal_bottom_right_with_other_masks(ex, rng):
    """is_causal is aligned bottom-right when L != S, alone and ORed with a 4-D attn_mask and key padding"""
    H, d, L, S = sizes(rng)
    D = H * d
    weights = make_weights(rng, D, torch.float64)
    B = randint(rng, 2, 4)
    L, S = min(L, S), max(L, S)                             # fewer queries than keys, as when decoding
    masks_hold(ex, randn(rng, B, L, D, dtype=torch.float64), weights, H, randn(rng, B, S, D, dtype=torch.float64),
               randn(rng, B, S, D, dtype=torch.float64), is_causal=True)
    L, S, B = S, L, randint(rng, 3, 5)                      # more queries than keys: the first see none
    # attn_mask blocks only keys the causal mask allows, and the last query's key 0 in head 0 for sure:
    # dropping either mask then changes the result
    attn = (torch.rand(1, H, L, S, generator=rng) < 0.25) & ~causal(L, S)
    attn[0, 0, -1, 0] = True
    attn[0, :, -1, -1] = False      # the last query sees the last key, which padding hides in item 1
    masks_hold(ex, randn(rng, B, L, D, dtype=torch.float64), weights, H, randn(rng, B, S, D, dtype=torch.float64),
               randn(rng, B, S, D, dtype=torch.float64), key_padding_mask=padding(rng, B, S, full=True), attn_mask=attn,
               is_causal=True)


@graded("fp16", 1.5)
def test_half_precision_with_fully_masked_rows(ex, rng):
    """float16 and bfloat16: finite (also where a query sees no key), accurate to the dtype, dtype kept"""
    for dtype in HALF:
        H, d, L, S = sizes(rng)
        D = H * d
        B = H + 1                   # B != H: a mask that puts the batch on the head axis cannot pass
        query, weights, key = randn(rng, B, L, D, dtype=dtype), make_weights(rng, D, dtype), randn(rng, B, S, D, dtype=dtype)
        masks = dict(key_padding_mask=padding(rng, B, S, full=True), is_causal=True)
        mask = combined_mask(B, H, L, S, masks["key_padding_mask"], None, True)
        probs = oracle(query, weights, H, key=key, need_weights=True, **masks)[1]
        rounds_own_float64(ex, mha_forward, query, weights, H, key=key, need_weights=True, dtype=dtype,
                           magnitude=magnitudes(query, weights, H, True, key, None, mask, probs), **masks)


@graded("edge", 0.5)
def test_value_defaults_to_key(ex, rng):
    """value left as None means value = key (cross-attention given only a key)"""
    H, d, L, _ = sizes(rng)
    D = H * d
    B = randint(rng, 2, 4)
    weights = make_weights(rng, D, torch.float64)
    query, key = randn(rng, B, L, D, dtype=torch.float64), randn(rng, B, L, D, dtype=torch.float64)
    given_key = forward(ex, query, weights, H, key=key)
    call = ex.last_call
    agrees(given_key, call, forward(ex, query, weights, H, key=key, value=key),
           "should equal your own output with value=key given", ex)


@graded("edge", 0.5)
def test_one_query_one_key(ex, rng):
    """L = S = 1 works: a single token attends to itself, weights included"""
    H, d, _, _ = sizes(rng)
    D = H * d
    attend(ex, randn(rng, randint(rng, 2, 4), 1, D, dtype=torch.float64), make_weights(rng, D, torch.float64), H,
           need_weights=True)


@graded("shapes", 0.5)
def test_projections_are_linear_d_by_d(ex, rng):
    """q_proj, k_proj, v_proj and out_proj are nn.Linear(D, D), with a bias exactly when bias=True"""
    H, d, L, _ = sizes(rng)
    D = H * d
    forward(ex, randn(rng, 1, L, D, dtype=torch.float64), make_weights(rng, D, torch.float64), H)   # it runs at all
    bias = bool(randint(rng, 0, 2))
    layers = ex.run(mha_layers, D, H, bias)
    for name in NAMES:
        found = layers.get(name) if isinstance(layers, dict) else None
        if found is None:
            fail(f"MultiHeadAttention({D}, {H}, bias={bias}) has no `{name}`: __init__ must create it.")
        if "Linear" not in found["classes"] or found["weight"] != [D, D] or found["bias"] != ([D] if bias else None):
            fail(f"MultiHeadAttention({D}, {H}, bias={bias}).{name} should be nn.Linear({D}, {D}, bias={bias}) "
                 f"(weight [{D}, {D}], bias {[D] if bias else None}), but is a {found['classes'][0]} with weight "
                 f"{found['weight']} and bias {found['bias']}.")


@graded("edge", 0.5)
def test_value_error_when_heads_do_not_divide(ex, rng):
    """MultiHeadAttention(D, H) raises ValueError when D is not a multiple of H"""
    H, d, L, _ = sizes(rng)
    D = H * d
    forward(ex, randn(rng, 1, L, D), make_weights(rng, D, torch.float32), H)     # the module runs at all
    raises(ex, "ValueError", "MultiHeadAttention", D + 1, H, why=f" ({D + 1} features do not split into {H} heads)")


@graded("work", 0.75)
def test_no_python_loops(ex, rng):
    """dispatches as many tensor operations for 8 heads, batches or queries as for 2: no Python loop"""
    weights = make_weights(rng, 16, torch.float32)

    def call(B, H, L):
        ex.run(mha_forward, randn(rng, B, L, 16), weights, H, is_causal=True,
               key_padding_mask=torch.zeros(B, L, dtype=torch.bool))
    no_loops(ex, call, {"B": (2, 8), "H": (2, 8), "L": (2, 8)})


@graded("rules", 0.5)
def test_no_torch_multihead_attention(ex, rng):
    """is built without nn.MultiheadAttention, scaled_dot_product_attention or another fused helper"""
    forward(ex, randn(rng, 1, 3, 4), make_weights(rng, 4, torch.float32), 2)
    rules_respected(ex)
