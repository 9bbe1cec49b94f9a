"""Hidden tests for exercise 12: sinusoidal encodings and rotary embeddings (rotate-half RoPE)."""
import torch

from grader.checks import devices_kept
from grader.checks import no_loops
from grader.checks import (TOLERANCE, Mistake, choice, close, fail, graded, randint, randn, raises, rounds_own_float64,
                           rules_respected, shaped, unchanged_inputs)

TITLE = "sinusoidal and rotary positions"   # what the learner reads (README table: python -m grader.course sync)
CHECKS_DEVICES = True   # a test calls the code on the meta device (the zygote loads its kernels once)
STEP = "follow-up: sinusoidal and rotary positions"


# -- the right answers, in float64 ------------------------------------------------------------
def sinusoid(L, d_model, base=10000.0, layout="interleaved", pair_exponent=2.0):
    """PE[p, 2i] = sin(p / base^(2i/d)), PE[p, 2i+1] = cos(same), straight from the formula."""
    p = torch.arange(L, dtype=torch.float64)[:, None]
    i = torch.arange(d_model // 2, dtype=torch.float64)
    angle = p / torch.tensor(float(base), dtype=torch.float64) ** (pair_exponent * i / d_model)
    sin, cos = angle.sin(), angle.cos()
    if layout == "concatenated":
        return torch.cat((sin, cos), dim=-1)
    if layout == "swapped":
        sin, cos = cos, sin
    return torch.stack((sin, cos), dim=-1).reshape(L, d_model)


def rope(x, positions=None, base=10000.0, pairs="halves", sign=1.0, exponent=2.0):
    """Rotary embedding as a complex rotation: the pair (x_i, x_{i+d/2}) is the number
    x_i + j·x_{i+d/2}, multiplied by exp(j·p·base^(-2i/d))."""
    x = x.to(torch.float64)
    L, d = x.shape[-2], x.shape[-1]
    pos = torch.arange(L) if positions is None else torch.as_tensor(positions)
    i = torch.arange(d // 2, dtype=torch.float64)
    angle = pos.to(torch.float64)[:, None] * torch.tensor(float(base), dtype=torch.float64) ** (-exponent * i / d)
    turn = torch.polar(torch.ones_like(angle), sign * angle)                 # (L, d/2) unit complex numbers
    if pairs == "halves":
        z = torch.complex(x[..., : d // 2], x[..., d // 2:]) * turn
        return torch.cat((z.real, z.imag), dim=-1)
    z = torch.complex(x[..., 0::2], x[..., 1::2]) * turn                        # pairs (2i, 2i+1)
    return torch.stack((z.real, z.imag), dim=-1).reshape(x.shape)


def check_rope(ex, actual, x, positions=None, base=10000.0):
    """Compares with `rope`. Angles computed in float32 are fair whatever the input's dtype: their
    error grows with the position and |x|, so the absolute tolerance does too."""
    L = x.shape[-2]
    pos = torch.arange(L) if positions is None else torch.as_tensor(positions)
    slack = (1 + pos.to(torch.float64).abs()[:, None]) * x.to(torch.float64).abs().amax() / 20
    atol = max(2e-5, TOLERANCE[x.dtype][1])
    close(actual, rope(x, positions, base), ex, dtype=x.dtype, atol=atol, magnitude=slack)


# -- known mistakes ---------------------------------------------------------------------------
INTERLEAVED = "rotary pairs interleaved (2i, 2i+1) instead of halves (i, i + d/2)"
CONCATENATED = "sin and cos concatenated instead of interleaved"

def _half_angles(x, positions=None, base=10000.0):
    """Angles computed in the input's own (half) dtype, then the rotation."""
    L, d = x.shape[-2], x.shape[-1]
    pos = torch.arange(L) if positions is None else torch.as_tensor(positions)
    inv = base ** (-torch.arange(d // 2, dtype=x.dtype) * 2 / d)
    angle = (pos.to(x.dtype)[:, None] * inv).to(torch.float64)
    cos, sin = angle.cos(), angle.sin()
    x = x.to(torch.float64)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


MISTAKES = [
    Mistake("apply_rope", "rotary angles computed in half precision", STEP,
            "Compute position × frequency (and its cos and sin) in float32 or float64, then cast the rotated "
            "result back: float16 holds 1000 only to ±0.25 and bfloat16 to ±2, so far positions turn by the "
            "wrong angle.", _half_angles, key="rope_half_angles"),
    Mistake("apply_rope", INTERLEAVED, STEP,
            "The contract uses the rotate-half convention (GPT-NeoX, Llama in Hugging Face): feature i pairs with "
            "feature i + d/2. Split x into x1 = x[..., :d/2] and x2 = x[..., d/2:], then return "
            "cat(x1·cos − x2·sin, x2·cos + x1·sin).",
            lambda x, positions=None, base=10000.0: rope(x, positions, base, pairs="interleaved"), key="rope_interleaved"),
    Mistake("apply_rope", "the rotation turns the wrong way (angle −p·θ_i)", STEP,
            "Rotate by +p·θ_i: the first half becomes x1·cos − x2·sin and the second x2·cos + x1·sin.",
            lambda x, positions=None, base=10000.0: rope(x, positions, base, sign=-1.0), key="rope_wrong_direction"),
    Mistake("apply_rope", "the `positions` argument is ignored (always 0..L−1)", STEP,
            "Use the positions you are given (a decoding step at position 57 is rotated by 57·θ), and "
            "0..L−1 only when positions is None.",
            lambda x, positions=None, base=10000.0: rope(x, None, base), key="positions_ignored"),
    Mistake("apply_rope", "the `base` argument is ignored (always 10000)", STEP,
            "θ_i = base^(−2i/d) with the base you are given.",
            lambda x, positions=None, base=10000.0: rope(x, positions, 10000.0), key="base_ignored"),
    Mistake("apply_rope", "frequencies base^(−i/d) instead of base^(−2i/d)", STEP,
            "Pair i (of d/2) turns at θ_i = base^(−2i/d): the exponent runs over even feature indices.",
            lambda x, positions=None, base=10000.0: rope(x, positions, base, exponent=1.0), key="rope_frequency_exponent"),
    Mistake("sinusoidal_encoding", CONCATENATED, STEP,
            "Even features hold sin and odd features cos of the same angle: PE[:, 0::2] = sin, PE[:, 1::2] = cos "
            "(or stack them on a new last axis and flatten).",
            lambda L, d_model, base=10000.0: sinusoid(L, d_model, base, layout="concatenated"), key="sincos_concatenated"),
    Mistake("sinusoidal_encoding", "cos on the even features and sin on the odd ones", STEP,
            "PE[p, 2i] is the sine, PE[p, 2i+1] the cosine.",
            lambda L, d_model, base=10000.0: sinusoid(L, d_model, base, layout="swapped"), key="sincos_swapped"),
    Mistake("sinusoidal_encoding", "angles p / base^(i/d_model) instead of p / base^(2i/d_model)", STEP,
            "For the pair (2i, 2i+1) the exponent is 2i/d_model: the frequencies fall from 1 to 1/base.",
            lambda L, d_model, base=10000.0: sinusoid(L, d_model, base, pair_exponent=1.0), key="sinusoid_frequency_exponent"),
    Mistake("sinusoidal_encoding", "the `base` argument is ignored (always 10000)", STEP,
            "Divide by base^(2i/d_model) with the base you are given.",
            lambda L, d_model, base=10000.0: sinusoid(L, d_model, 10000.0), key="base_ignored"),
]


def attend(q, k, v):
    """Plain attention without positions, in the grader's process (float64)."""
    return torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1) @ v


# -- sinusoidal -------------------------------------------------------------------------------
@graded("equivalence", 2)
def test_sinusoidal_values(ex, rng):
    """sinusoidal_encoding matches the formula (float32), for any length, width and base"""
    for L, d, base in ((randint(rng, 1, 40), 2 * randint(rng, 1, 12), 10000.0),
                       (randint(rng, 20, 80), 2 * randint(rng, 2, 16), 10000.0),
                       (randint(rng, 2, 30), 2 * randint(rng, 2, 8), choice(rng, [100.0, 500.0]))):
        expected = sinusoid(L, d, base)
        slack = torch.arange(L, dtype=torch.float64)[:, None] / 50
        close(ex.sinusoidal_encoding(L, d, base), expected, ex, dtype=torch.float32, magnitude=slack)


@graded("shapes", 1)
def test_sinusoidal_interleaves_sin_and_cos(ex, rng):
    """sinusoidal_encoding puts sin on even features and cos on odd ones, in float32"""
    L, d = randint(rng, 6, 20), 2 * randint(rng, 3, 9)
    pe = shaped(ex.sinusoidal_encoding(L, d), (L, d), torch.float32, ex).to(torch.float64)
    # each pair (2i, 2i + 1) is a sin and a cos of one angle, whatever the frequencies
    ones = pe[:, 0::2] ** 2 + pe[:, 1::2] ** 2
    if not torch.allclose(ones, torch.ones_like(ones), atol=1e-4) or not torch.allclose(
            pe[0], torch.tensor([0.0, 1.0] * (d // 2), dtype=torch.float64), atol=1e-6):
        fail(f"sinusoidal_encoding({L}, {d}): features 2i and 2i + 1 should be sin and cos of the same angle "
             "(their squares add up to 1, and position 0 gives [0, 1, 0, 1, ...]): sin on even features, cos on "
             "odd ones, interleaved.")


@graded("edge", 0.5)
def test_sinusoidal_rejects_odd_width(ex, rng):
    """sinusoidal_encoding rejects an odd d_model with ValueError (sin and cos come in pairs)"""
    raises(ex, "ValueError", "sinusoidal_encoding", randint(rng, 2, 9), 2 * randint(rng, 1, 8) + 1,
           why=" (sin and cos come in pairs)")


@graded("edge", 0.5)
def test_sinusoidal_single_position(ex, rng):
    """sinusoidal_encoding of a single position is [0, 1, 0, 1, ...]"""
    d = 2 * randint(rng, 2, 6)      # d > 2: where interleaved and concatenated layouts differ
    close(ex.sinusoidal_encoding(1, d), torch.tensor([0.0, 1.0] * (d // 2)).reshape(1, d), ex, dtype=torch.float32)


# -- rotary -----------------------------------------------------------------------------------
@graded("equivalence", 2)
def test_rope_rotates_halves(ex, rng):
    """apply_rope rotates each pair (i, i + d/2) by p·base^(−2i/d) (rotate-half convention)"""
    x = randn(rng, randint(rng, 1, 3), randint(rng, 1, 4), randint(rng, 2, 9), 2 * randint(rng, 2, 9),
              dtype=torch.float64)
    check_rope(ex, ex.apply_rope(x), x)
    x = randn(rng, randint(rng, 2, 12), 2 * randint(rng, 1, 6), dtype=torch.float32)   # (L, d) alone
    check_rope(ex, ex.apply_rope(x), x)


@graded("edge", 0.5, checks="inputs")
def test_rope_input_left_alone(ex, rng):
    """apply_rope does not modify its input"""
    x = randn(rng, randint(rng, 2, 12), 2 * randint(rng, 1, 6), dtype=torch.float32)
    unchanged_inputs(ex, "apply_rope", x)


@graded("equivalence", 1.5)
def test_rope_positions_and_base(ex, rng):
    """apply_rope uses the positions and base it is given"""
    L = randint(rng, 2, 8)
    x = randn(rng, 2, 3, L, 2 * randint(rng, 2, 7), dtype=torch.float64)
    pos = torch.randint(0, 300, (L,), generator=rng)
    check_rope(ex, ex.apply_rope(x, pos), x, pos)
    base = choice(rng, [500.0, 1e6])
    pos = pos.to(torch.int32)
    check_rope(ex, ex.apply_rope(x, positions=pos, base=base), x, pos, base)


@graded("fp16", 1)
def test_rope_keeps_half_precision(ex, rng):
    """apply_rope keeps float16 and bfloat16"""
    for dtype in (torch.float16, torch.bfloat16):
        L = randint(rng, 2, 9)
        x = randn(rng, 2, 2, L, 8, dtype=dtype, scale=0.5)
        # near positions: the dtype kept and the rotation done at float32 or better; the precision of far
        # angles is the next test's
        pos = torch.randint(0, 8, (L,), generator=rng)
        rounds_own_float64(ex, "apply_rope", x, pos, dtype=dtype)


FAR = (0, 1, 100, 257, 1000, 2047, 4095)


@graded("fp16", 1)
def test_rope_far_positions_in_half_precision(ex, rng):
    """float16 and bfloat16 at far positions (up to 4095): the angles are exact to float32, not to the input's dtype"""
    for dtype in (torch.float16, torch.bfloat16):
        x = randn(rng, 1, 2, len(FAR), 8, dtype=dtype)
        pos = torch.tensor(FAR)
        # The only slack beyond rounding the result: angles computed in float32 (a few eps32 times the position).
        slack = pos.to(torch.float64)[:, None] * x.to(torch.float64).abs().amax() * 1e-6 / TOLERANCE[dtype][1]
        rounds_own_float64(ex, "apply_rope", x, pos, dtype=dtype, magnitude=slack)


def rotated(ex, rng):
    """q (4, d) and k (5, d) at random positions, their rotations checked; the shift the offset test uses."""
    d = 2 * randint(rng, 2, 8)
    q, k = randn(rng, 4, d, dtype=torch.float64), randn(rng, 5, d, dtype=torch.float64)
    pq, pk = torch.randint(0, 50, (4,), generator=rng), torch.randint(0, 50, (5,), generator=rng)
    rq = shaped(ex.apply_rope(q, pq), q.shape, q.dtype, ex)
    rk = shaped(ex.apply_rope(k, pk), k.shape, k.dtype, ex)
    return q, k, pq, pk, rq, rk


@graded("equivalence", 0.75, checks="norms")
def test_rope_keeps_norms(ex, rng):
    """RoPE keeps vector norms: it is a rotation"""
    q, k, pq, pk, rq, rk = rotated(ex, rng)
    norms_in, norms_out = q.norm(dim=-1), rq.norm(dim=-1)
    if not torch.allclose(norms_in, norms_out, rtol=1e-5, atol=1e-6):
        fail(f"apply_rope changed vector norms ({norms_in.tolist()[:3]} became {norms_out.tolist()[:3]}): "
             "a rotation keeps lengths. Each pair must turn as (x1·cos − x2·sin, x2·cos + x1·sin).")


@graded("equivalence", 0.75, checks="distance")
def test_rope_scores_depend_only_on_distance(ex, rng):
    """a rotated q·k depends only on the signed offset p_q − p_k between the positions, not on where they are"""
    q, k, pq, pk, rq, rk = rotated(ex, rng)
    shift = randint(rng, 1, 200)
    rq2, rk2 = ex.apply_rope(q, pq + shift), ex.apply_rope(k, pk + shift)
    before, after = rq @ rk.T, rq2 @ rk2.T
    if not torch.allclose(before, after, rtol=1e-4, atol=1e-4 * (1 + shift / 20)):
        fail(f"Shifting every query and key position by {shift} changed the scores q·k (by up to "
             f"{float((before - after).abs().max()):.3g}). With RoPE a score depends only on the signed offset p_q − p_k: "
             "both vectors must be rotated by the same rule, angle p·base^(−2i/d).")


@graded("equivalence", 1.5)
def test_positions_break_permutation_symmetry(ex, rng):
    """with RoPE, shuffling the tokens changes attention unless their positions move with them"""
    L, d = randint(rng, 4, 8), 2 * randint(rng, 2, 6)
    x = randn(rng, L, d, dtype=torch.float64)
    w_q, w_k, w_v = (randn(rng, d, d, dtype=torch.float64, scale=d ** -0.5) for _ in range(3))
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    perm = torch.randperm(L, generator=rng)
    while bool((perm == torch.arange(L)).all()):
        perm = torch.randperm(L, generator=rng)
    # Without positions attention is permutation-equivariant: shuffled tokens, shuffled outputs.
    assert torch.allclose(attend(q[perm], k[perm], v[perm]), attend(q, k, v)[perm])

    rq, rk = (shaped(ex.apply_rope(t), t.shape, t.dtype, ex) for t in (q, k))
    rq_shuffled = shaped(ex.apply_rope(q[perm]), q.shape, q.dtype, ex)
    rk_shuffled = shaped(ex.apply_rope(k[perm]), k.shape, k.dtype, ex)
    out, out_shuffled = attend(rq, rk, v), attend(rq_shuffled, rk_shuffled, v[perm])
    if torch.allclose(out_shuffled, out[perm], atol=1e-6):
        fail("With RoPE at positions 0..L−1, shuffling the tokens left attention permutation-equivariant: "
             "your rotation does not depend on the position, so word order is still invisible.")
    carried_q, carried_k = (shaped(ex.apply_rope(t[perm], perm), t.shape, t.dtype, ex) for t in (q, k))
    carried = attend(carried_q, carried_k, v[perm])
    if not torch.allclose(carried, out[perm], rtol=1e-4, atol=1e-5):
        fail("Shuffled tokens that keep their own positions (positions=perm) should give the same attention, "
             "shuffled the same way: the rotation must follow the position, not the index in the tensor.")


@graded("work", 0.75)
def test_no_python_loops(ex, rng):
    """dispatches as many tensor operations for 8 positions, heads or batches as for 2: no Python loop"""
    no_loops(ex, lambda L: ex.sinusoidal_encoding(L, 8), {"L": (2, 8)})

    def call(B, H, L):
        ex.apply_rope(randn(rng, B, H, L, 8))
    no_loops(ex, call, {"B": (2, 8), "H": (2, 8), "L": (2, 8)})


@graded("rules", 0.5)
def test_no_fused_attention(ex, rng):
    """is built without a fused attention kernel"""
    ex.apply_rope(randn(rng, 3, 4))
    rules_respected(ex)


@graded("edge", 0.25, checks="device")
def test_rope_lives_on_the_inputs_device(ex, rng):
    """apply_rope's angles are made where x lives (checked on the meta device)"""
    x = randn(rng, 2, 5, 6)         # fixed sizes, as the point is: the same on every seed
    devices_kept(ex, "apply_rope", x)
