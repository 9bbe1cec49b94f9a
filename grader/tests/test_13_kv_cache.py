"""Hidden tests for exercise 13: a preallocated KV cache and attention over it during decoding."""
import torch

from grader.checks import devices_kept
from grader.checks import no_loops
from grader.checks import (Attending, Mistake, agrees, as_tensor, attention_with_key_weights, close, fail, graded,
                           keys_hidden, randint, randn, rules_respected, shaped)

TITLE = "KV cache for decoding"   # what the learner reads (README table: python -m grader.course sync)
CHECKS_DEVICES = True   # a test calls the code on the meta device (the zygote loads its kernels once)
STEP = "follow-up: KV cache for decoding"
COST = 2       # its tests take about twice a typical exercise's (grading workers take the costliest first)


# -- probes: they run in the sandbox, drive the learner's cache and only report ----------------
def decode(module, q, k, v, chunks, max_len, scale=None):
    """A fresh cache, then cached_attention on consecutive chunks of the sequence."""
    B, H, _, d = k.shape
    cache = module.KVCache(B, H, max_len, d, dtype=k.dtype, device=k.device)
    outs, lens, start = [], [], 0
    for T in chunks:
        end = start + T
        outs.append(module.cached_attention(q[:, :, start:end], k[:, :, start:end], v[:, :, start:end], cache,
                                            scale=scale))
        lens.append(len(cache))
        start = end
    return outs, lens


def _storage(t):
    return trusted.storage(t)       # the sandbox's own measure: nothing the submission can patch


def fill(module, k, v, chunks, max_len):
    """update() chunk by chunk; keeps every returned view alive and reports where it lives."""
    B, H, _, d = k.shape
    cache = module.KVCache(B, H, max_len, d, dtype=k.dtype, device=k.device)
    kept, steps, start = [], [], 0
    for T in chunks:
        end = start + T
        kv, vv = cache.update(k[:, :, start:end], v[:, :, start:end])
        kept.append((kv, vv))
        steps.append({"len": len(cache), "k_storage": _storage(kv), "v_storage": _storage(vv)})
        start = end
    return [kv for kv, _ in kept], [vv for _, vv in kept], steps


def reject(module, k, v, prefill, bad_k, bad_v, good, max_len, on_meta=False):
    """Prefill, one update that must be refused, then one valid update: what came of each."""
    B, H, _, d = k.shape
    cache = module.KVCache(B, H, max_len, d, dtype=k.dtype, device=k.device)
    cache.update(k[:, :, :prefill], v[:, :, :prefill])
    if on_meta:
        bad_k, bad_v = bad_k.to("meta"), bad_v.to("meta")
    raised = None
    try:
        cache.update(bad_k, bad_v)
    except Exception as e:
        raised = [t.__name__ for t in type(e).__mro__]
    len_after_refusal = len(cache)
    try:        # a refusal that left the cache changed may make this valid update raise: that is data too
        kv, vv = cache.update(k[:, :, prefill:prefill + good], v[:, :, prefill:prefill + good])
    except Exception as e:
        return {"raised": raised, "len_after_refusal": len_after_refusal, "raised_after": f"{type(e).__name__}: {e}"}
    return {"raised": raised, "len_after_refusal": len_after_refusal, "len_after": len(cache), "k": kv, "v": vv}


# -- the right answers, in float64 ------------------------------------------------------------
def attention(q, k, v, mask, scale=None):
    q, k, v = (t.to(torch.float64) for t in (q, k, v))
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    s = (q @ k.transpose(-2, -1) * scale).masked_fill(mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def late_scaled(q, k, v, chunks, max_len, scale=None):
    """The causal fill first, then the scale (scale=0 gives every key, future ones too, the same weight)."""
    outs, start = [], 0
    for T in chunks:
        end = start + T
        keys, values = k[:, :, :end].to(torch.float64), v[:, :, :end].to(torch.float64)
        s = 1.0 / q.shape[-1] ** 0.5 if scale is None else scale
        mask = torch.ones(T, end, dtype=torch.bool).triu(end - T + 1)
        scores = (q[:, :, start:end].to(torch.float64) @ keys.transpose(-2, -1)).masked_fill(
            mask, torch.finfo(torch.float64).min) * s
        outs.append(torch.softmax(scores, dim=-1) @ values)
        start = end
    return torch.cat(outs, dim=2), None


def simulate(q, k, v, chunks, scale=None, variant="bottom-right"):
    """What chunked decoding gives: the contract's bottom-right mask, or a known wrong one."""
    outs, start = [], 0
    for T in chunks:
        end = start + T
        keys, values = (k[:, :, :end], v[:, :, :end]) if variant != "new only" else (k[:, :, start:end],
                                                                                     v[:, :, start:end])
        S = keys.shape[2]
        mask = {"bottom-right": torch.ones(T, S, dtype=torch.bool).triu(S - T + 1),
                "top-left": torch.ones(T, S, dtype=torch.bool).triu(1),
                "none": torch.zeros(T, S, dtype=torch.bool),
                "new only": torch.ones(T, S, dtype=torch.bool).triu(1)}[variant]
        outs.append(attention(q[:, :, start:end], keys, values, mask, scale))
        start = end
    return torch.cat(outs, dim=2)


def full_causal(q, k, v, scale=None):
    L = q.shape[2]
    return attention(q, k, v, torch.ones(L, L, dtype=torch.bool).triu(1), scale)


def _wrong(variant):
    return lambda q, k, v, chunks, max_len, scale=None: (simulate(q, k, v, chunks, scale, variant), None)


TORCH_CAT = Mistake(
    "update", "cache reallocated with `torch.cat` every step (O(len) copying per token)", STEP,
    "Allocate (B, H, max_len, d) buffers once in __init__, write each chunk in place "
    "(self.k[:, :, start:end] = k_new) and return views self.k[:, :, :end].", key="cache_reallocated_with_cat")

MISTAKES = [
    Mistake("decode", "the scale is applied after the causal mask fill", STEP,
            "Scale the scores first, then fill the blocked ones: with scale=0 a filled score becomes 0 again and "
            "every new token sees the tokens after it.", late_scaled, key="scale_after_mask"),
    Mistake("decode", "causal mask of the new tokens aligned top-left", STEP,
            "New token t of T sits at absolute position S − T + t, so it sees every cached key and the new keys up "
            "to itself: block key j only where j > t + (S − T) (bottom-right), e.g. "
            "torch.ones(T, S, dtype=torch.bool).triu(S − T + 1).", _wrong("top-left"), key="causal_top_left"),
    Mistake("decode", "no causal mask among the new tokens (a chunk's queries see its later keys)", STEP,
            "When several tokens arrive at once (prefill, chunks), token t must not see the new tokens after it: "
            "mask keys j > t + (S − T).", _wrong("none"), key="no_causal_mask"),
    Mistake("decode", "attends only over the new keys and values, not over the whole cache", STEP,
            "Attend over what update() returns (everything stored), not over k_new and v_new.",
            _wrong("new only"), key="new_keys_only"),
]


def qkv(rng, B, H, L, d, dtype=torch.float32):
    return tuple(randn(rng, B, H, L, d, dtype=dtype) for _ in range(3))


def run_decode(ex, q, k, v, chunks, max_len, scale=None, dtype=None):
    out, lens = decoded_with_lengths(ex, q, k, v, chunks, max_len, scale)
    stored, expect = list(lens), [sum(chunks[:i + 1]) for i in range(len(chunks))]
    if stored != expect:     # checked first: a cache that does not count is the cause of what follows
        fail(f"len(cache) after each chunk of {chunks} was {stored}; expected {expect} (the tokens stored). "
             "update() must advance the count by the T tokens it wrote, so that the next chunk is written after "
             "them and attention sees all of them.")
    L = q.shape[2]
    attending = Attending(lambda weights: attention_with_key_weights(q, k, v, weights, scale),
                          torch.ones(L, L, dtype=torch.bool).tril())
    close(out, full_causal(q, k, v, scale), ex, dtype=dtype or q.dtype, part=0, attending=attending)


def decoded(ex, q, k, v, chunks, max_len, scale=None):
    """The outputs of every chunk, concatenated along the tokens (checked for shape on the way)."""
    return decoded_with_lengths(ex, q, k, v, chunks, max_len, scale)[0]


def decoded_with_lengths(ex, q, k, v, chunks, max_len, scale=None):
    """(the outputs of every chunk concatenated along the tokens, len(cache) after each chunk)."""
    outs, lens = ex.run(decode, q, k, v, chunks, max_len, scale)
    outs = [as_tensor(o, f"what cached_attention returned for chunk {i + 1}") for i, o in enumerate(outs)]
    for i, o in enumerate(outs):
        want = (q.shape[0], q.shape[1], chunks[i], v.shape[3])
        if tuple(o.shape) != want:
            fail(f"cached_attention on a chunk of {chunks[i]} new tokens returned shape {tuple(o.shape)}; expected "
                 f"(B, H, T, d_v) = {want}: one output per new query.", on="shape")
    return torch.cat(outs, dim=2), lens


def causally(ex, q, k, v, chunks, max_len, scale=None):
    """The mask as a relation on the learner's own decoding: the output of token t does not change when a
    later token's key and value change, and changes when an earlier one's (or its own) does."""
    L = q.shape[2]
    keys_hidden(ex, lambda k, v: (decoded(ex, q, k, v, chunks, max_len, scale),), k, v,
                torch.ones(L, L, dtype=torch.bool).triu(1))


# -- tests ------------------------------------------------------------------------------------
@graded("equivalence", 2.5)
def test_prefill_then_token_by_token(ex, rng):
    """prefill then token-by-token decoding equals full causal attention"""
    for dtype in (torch.float64, torch.float32):
        B, H, L, d = randint(rng, 1, 3), randint(rng, 1, 4), randint(rng, 5, 9), randint(rng, 2, 9)
        prefill = randint(rng, 2, L - 1)
        q, k, v = qkv(rng, B, H, L, d, dtype)
        run_decode(ex, q, k, v, [prefill] + [1] * (L - prefill), L + randint(rng, 0, 4))


@graded("masking", 2)
def test_chunked_decoding_is_bottom_right(ex, rng):
    """chunks of several new tokens see the whole cache and each other causally (bottom-right mask)"""
    B, H, d = randint(rng, 1, 3), randint(rng, 1, 4), randint(rng, 2, 9)
    chunks = [randint(rng, 2, 5), randint(rng, 2, 4), 1, randint(rng, 2, 4)]
    q, k, v = qkv(rng, B, H, sum(chunks), d, torch.float64)
    causally(ex, q, k, v, chunks, sum(chunks) + 2)
    q, k, v = qkv(rng, 1, 2, 5, 4, torch.float64)
    causally(ex, q, k, v, [3, 2], 5, scale=0.7)
    causally(ex, q, k, v, [4, 1], 5, scale=0.0)      # every seed: scale 0 must still hide future tokens


@graded("fp16", 1)
def test_float16_cache(ex, rng):
    """a float16 cache decodes in float16, finite and accurate"""
    q, k, v = qkv(rng, 2, 2, 7, 8, torch.float16)
    half = decoded(ex, q, k, v, [4, 1, 2], 8)
    call = ex.last_call
    wide = decoded(ex, *(t.to(torch.float64) for t in (q, k, v)), [4, 1, 2], 8)
    agrees(half, call, wide, "in float16 should give your own float64 outputs, rounded", ex, dtype=torch.float16,
           finite=True, part=0)


def filled(ex, rng):
    """Three updates of a cache with room to spare: the chunks, the keys and values, and what each step saw."""
    B, H, d = randint(rng, 1, 3), randint(rng, 1, 4), randint(rng, 2, 7)
    chunks = [randint(rng, 1, 4), 1, randint(rng, 2, 4)]
    k, v = randn(rng, B, H, sum(chunks), d), randn(rng, B, H, sum(chunks), d)
    ks, vs, steps = ex.run(fill, k, v, chunks, sum(chunks) + 3)
    return chunks, k, v, ks, vs, steps


@graded("shapes", 1)
def test_update_returns_views_of_everything_stored(ex, rng):
    """update() returns (B, H, len, d) views of all the keys and values stored so far"""
    chunks, k, v, ks, vs, steps = filled(ex, rng)
    B, H, _, d = k.shape
    for i in range(len(steps)):
        n = sum(chunks[:i + 1])
        shaped(ks[i], (B, H, n, d), k.dtype, ex, what=f"the keys returned by update() number {i + 1}")
        shaped(vs[i], (B, H, n, d), v.dtype, ex, what=f"the values returned by update() number {i + 1}")


@graded("edge", 0.5, checks="length")
def test_len_counts_tokens_stored(ex, rng):
    """len(cache) is the number of tokens stored after each update"""
    chunks, k, v, ks, vs, steps = filled(ex, rng)
    for i, step in enumerate(steps):
        n = sum(chunks[:i + 1])
        if step["len"] != n:
            fail(f"len(cache) was {step['len']!r} after storing {n} tokens (chunks {chunks[:i + 1]}).")


@graded("edge", 1.5)
def test_buffers_preallocated_and_never_reallocated(ex, rng):
    """writes into buffers preallocated for max_len: no reallocation (torch.cat) at any step"""
    B, H, d, max_len = randint(rng, 1, 3), randint(rng, 1, 4), randint(rng, 2, 7), randint(rng, 9, 14)
    chunks = [randint(rng, 2, 5), 1, 1, 2]
    k, v = randn(rng, B, H, sum(chunks), d), randn(rng, B, H, sum(chunks), d)
    ks, vs, steps = ex.run(fill, k, v, chunks, max_len)
    close(ks[-1], k, ex, what="the keys returned by the last update()")
    need = B * H * max_len * d * k.element_size()
    for name in ("k", "v"):
        ptrs = [s[f"{name}_storage"][0] for s in steps]
        if None in ptrs:
            fail(f"update() returned no tensor for the {name}s.")
        if len(set(ptrs)) > 1:
            fail(f"The cache was reallocated: the {name} views returned by successive update() calls live in "
                 f"{len(set(ptrs))} different memory blocks.", mistake=TORCH_CAT)
        size = steps[0][f"{name}_storage"][1]
        if size < need:
            fail(f"The {name} view returned by the first update() lives in a block of {size} bytes, too small for "
                 f"max_len = {max_len} tokens ({need} bytes): the buffers are not preallocated for max_len, so they "
                 "must grow later. Allocate (B, H, max_len, d) once in __init__.")


def _check_refusal(ex, got, k, v, prefill, good, what):
    if got["raised"] is None or "ValueError" not in got["raised"]:
        said = "returned normally" if got["raised"] is None else f"raised {got['raised'][0]}"
        fail(f"update() with {what} {said}; it should raise ValueError before writing anything.")
    if got["len_after_refusal"] != prefill:
        fail(f"After the refused update ({what}) len(cache) was {got['len_after_refusal']!r}, not {prefill}: "
             "check everything before writing, so a refused update leaves the cache unchanged.")
    n = prefill + good
    if got.get("raised_after"):
        fail(f"After the refused update ({what}), a valid update of {good} tokens raised {got['raised_after']}"[:400]
             + ": the refusal left the cache changed. Check everything before writing anything.")
    close(got["k"], k[:, :, :n], ex, what=f"the keys stored after a refused update ({what}) and a valid one")
    close(got["v"], v[:, :, :n], ex, what=f"the values stored after a refused update ({what}) and a valid one")
    if got["len_after"] != n:
        fail(f"len(cache) was {got['len_after']!r} after a refused update ({what}) and a valid one; expected {n}.")


@graded("edge", 1.5)
def test_overflow_is_refused(ex, rng):
    """an update past max_len is refused cleanly: ValueError, the cache unchanged and still usable up to max_len"""
    B, H, d = randint(rng, 1, 3), randint(rng, 1, 3), randint(rng, 2, 6)
    prefill, max_len = randint(rng, 2, 5), None
    max_len = prefill + 2
    k, v = randn(rng, B, H, max_len, d), randn(rng, B, H, max_len, d)
    bad = randn(rng, B, H, 3, d)
    got = ex.run(reject, k, v, prefill, bad, bad, 2, max_len)
    _check_refusal(ex, got, k, v, prefill, 2, f"{prefill} tokens stored, max_len {max_len} and 3 new tokens")


@graded("edge", 1.5)
def test_mismatched_updates_are_refused(ex, rng):
    """updates with another batch, head count, head size, dtype or device raise ValueError, cache unchanged"""
    B, H, d, prefill = randint(rng, 1, 3), randint(rng, 1, 3), randint(rng, 2, 6), randint(rng, 1, 4)
    k, v = randn(rng, B, H, prefill + 1, d), randn(rng, B, H, prefill + 1, d)
    cases = [("another batch size", randn(rng, B + 1, H, 1, d), False),
             ("another head count", randn(rng, B, H + 1, 1, d), False),
             ("another head size", randn(rng, B, H, 1, d + 2), False),
             ("another dtype (float64 into a float32 cache)", randn(rng, B, H, 1, d, dtype=torch.float64), False),
             ("another device (meta)", randn(rng, B, H, 1, d), True)]
    for what, bad, on_meta in cases:
        got = ex.run(reject, k, v, prefill, bad, bad, 1, prefill + 3, on_meta)
        _check_refusal(ex, got, k, v, prefill, 1, what)


@graded("work", 0.7)
def test_no_python_loops(ex, rng):
    """a chunk of 8 new tokens dispatches as many tensor operations as a chunk of 2, likewise for heads and batches"""
    def call(B, H, T):
        q, k, v = qkv(rng, B, H, T + 3, 4)
        ex.run(decode, q, k, v, [3, T], T + 3)
    no_loops(ex, call, {"B": (2, 8), "H": (2, 8), "T": (2, 8)})


@graded("rules", 0.5)
def test_no_fused_attention(ex, rng):
    """is built without a fused attention kernel"""
    q, k, v = qkv(rng, 1, 1, 3, 4)
    ex.run(decode, q, k, v, [2, 1], 3)
    rules_respected(ex)


def decode_on_meta(module, name, args, kwargs):
    """Probe: a cache made with device="meta", one cached_attention call on meta tensors; the device,
    shape and dtype of the result and of every view update() returns."""
    q, k, v = (t.to("meta") for t in args)
    B, H, T, d = k.shape
    cache = module.KVCache(B, H, T + 2, d, dtype=k.dtype, device="meta")
    views = cache.update(k[:, :, :1], v[:, :, :1])
    out = module.cached_attention(q[:, :, 1:], k[:, :, 1:], v[:, :, 1:], cache)
    return [(str(t.device), list(t.shape), str(t.dtype)) for t in (*views, out)]


@graded("edge", 0.25, checks="device")
def test_cache_lives_on_the_device_asked_for(ex, rng):
    """a cache made with device=d keeps its buffers, views and results there (checked on the meta device)"""
    q, k, v = qkv(rng, 1, 2, 3, 4)  # fixed sizes, as the point is: the same on every seed
    devices_kept(ex, "cached_attention", q, k, v, probe=decode_on_meta)
