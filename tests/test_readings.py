"""Every number and PyTorch behaviour the teaching text states is computed or measured here, and tied to
the sentence that states it, so that neither can drift.

Each fact is a sentence template and a function: the function computes (or measures, in torch) the
values, the template is filled with them, and the filled sentence must stand in the file word for
word. Change the number in the text, or what computes it, and the fact fails; so does a sentence
that is reworded or deleted (then reword the template too, after checking the claim).
"""
import functools
import importlib.util
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from helpers import REPO

EX = REPO / "exercises"
HINTS = EX / "hints"
CONVENTIONS = EX / "conventions.md"
QUIZ = REPO / "grader" / "quiz" / "questions.py"
DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)


def text(path):
    return " ".join(path.read_text().split())      # one line: sentences may wrap


def solution(stem):
    spec = importlib.util.spec_from_file_location(f"reference_{stem}", REPO / "solutions" / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class MultiplyAdds(TorchFunctionMode):
    """Counts the multiply-adds of matrix products (`@`, matmul, bmm) and of F.linear, by kind."""

    def __init__(self):
        super().__init__()
        self.products = self.linear = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is F.linear:
            x, w = args[0], args[1]
            self.linear += x.numel() // x.shape[-1] * w.numel()
        elif func in (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.bmm):
            a = args[0]
            self.products += out.numel() * a.shape[-1]
        return out


# -- the computations -------------------------------------------------------------------------
def exp_overflow():
    return int(math.log(torch.finfo(torch.float32).max)), int(math.log(torch.finfo(torch.float16).max))


def float16_exp_overflow():
    (edge,) = exp_overflow()[1:]
    assert torch.isfinite(torch.tensor(float(edge), dtype=torch.float16).exp())
    assert torch.isinf(torch.tensor(edge + 0.1).to(torch.float16).exp())
    return (edge,)


def kv_cache_bytes(batch, seq_len, layers, kv_heads, head_dim, bytes_per_element):
    return 2 * batch * seq_len * layers * kv_heads * head_dim * bytes_per_element


LLAMA3_8B = dict(layers=32, kv_heads=8, head_dim=128, bytes_per_element=2)     # bfloat16; 8.03e9 parameters


def llama_cache(batch, seq_len):
    return kv_cache_bytes(batch, seq_len, **LLAMA3_8B)


def gib(n):
    assert n % 2 ** 30 == 0, n
    return n // 2 ** 30


def llama_weights_gb():
    return (round(8.03e9 * LLAMA3_8B["bytes_per_element"] / 1e9),)


def llama_per_token():
    per_token = llama_cache(1, 1)
    assert per_token % 1024 == 0
    return (per_token // 1024,)


def llama_batches():
    return gib(llama_cache(1, 8192)), llama_weights_gb()[0], gib(llama_cache(32, 8192))


def gqa_example():
    """11's Complexity: 32 layers, 8 kv heads of 128, float16, 8192 tokens, against 32 kv heads."""
    mine, full = kv_cache_bytes(1, 8192, 32, 8, 128, 2), kv_cache_bytes(1, 8192, 32, 32, 128, 2)
    assert mine * 4 == full
    return gib(mine), "a quarter"


def mha_flops_per_token(D=64, H=4, L=8, S=40):
    """Multiply-adds per query token of the reference module: (projections, attention), measured."""
    module = solution("10_multi_head_attention").MultiHeadAttention(D, H).eval()
    query, key = torch.randn(1, L, D), torch.randn(1, S, D)
    with MultiplyAdds() as counter, torch.no_grad():
        module(query, key, key)
    # q and out for the L queries, k and v for the S keys: in self-attention (S = L), 4·D² per token
    assert counter.linear == 2 * L * D * D + 2 * S * D * D
    per_token_projections = 4 * D * D
    per_token_attention = counter.products // L
    assert per_token_attention == 2 * S * D
    return per_token_projections, per_token_attention, D, S


def crossover():
    """S at which the per-token attention cost, 2·S·D, overtakes the projections', 4·D²."""
    projections, attention, D, S = mha_flops_per_token()
    per_key = attention / S                      # 2·D
    assert projections % per_key == 0
    return (f"{int(projections / per_key / D)}D",)


def cost_sentence():
    projections, attention, D, S = mha_flops_per_token()
    return f"{projections // (D * D)}·D²", f"{attention // (S * D):g}·S·D"


def quiz_crossover():
    return f"{mha_flops_per_token()[0] // 64 // 64}·L·d²", crossover()[0].replace("D", "d")


def mha_parameters():
    D = 32
    n = sum(p.numel() for p in nn.MultiheadAttention(D, 4, bias=False).parameters())
    assert n % (D * D) == 0
    return (f"{n // (D * D)}·D²",)


def backward_over_forward():
    """Matrix-product FLOPs of attention's backward over its forward (autograd on the same products)."""
    q, k, v = (np.random.default_rng(0).standard_normal((2, n, 8)) for n in (6, 10, 10))
    module = solution("15_attention_backward")
    products = []

    def counting(a, b):
        out = np.matmul(a, b)
        products.append(out.size * a.shape[-1])
        return out
    module.np = type("CountingNumPy", (), {"__getattr__": lambda self, name: getattr(np, name),
                                           "matmul": staticmethod(counting)})()
    out, cache = module.attention_forward(q, k, v)
    forward = sum(products)
    module.attention_backward(np.ones_like(out), cache)
    assert sum(products) - forward == 2 * forward
    return ("twice",)


@functools.cache
def causal_tiles():
    """14's hidden test: L = S = 256 in blocks of 32; the reference's causal matrix-product work over
    its full one, measured."""
    flash = solution("14_flash_attention").flash_attention
    q = k = v = torch.randn(1, 1, 256, 32)
    work = []
    for causal in (True, False):
        with MultiplyAdds() as counter:
            flash(q, k, v, causal=causal, block_size=32)
        work.append(counter.products)
    n = 256 // 32
    assert work[0] * n * n == work[1] * n * (n + 1) // 2
    return n * (n + 1) // 2, n * n, round(100 * work[0] / work[1]), n


def causal_percent():
    return (causal_tiles()[2],)


def half_precision_steps():
    steps = []
    for dtype in (torch.float16, torch.bfloat16):
        x = torch.tensor(1000.0, dtype=dtype)
        steps.append(f"{float(torch.nextafter(x, torch.tensor(2000.0, dtype=dtype)) - x):g}")
    return tuple(steps)


def rounding_at_1000():
    return tuple(f"{float(s) / 2:g}" for s in half_precision_steps())


def stub_11_example():
    gqa, mha = kv_cache_bytes(1, 8192, 32, 8, 128, 2), kv_cache_bytes(1, 8192, 32, 32, 128, 2)
    return f"{gqa:,}".replace(",", " "), gib(gqa), gib(mha)


def gqa_70b():
    gqa, mha = kv_cache_bytes(1, 4096, 80, 8, 128, 2), kv_cache_bytes(1, 4096, 80, 64, 128, 2)
    assert mha == 8 * gqa
    return (gqa,)


def float16_max():
    return (f"{torch.finfo(torch.float16).max:g}",)


def float32_min():
    return (f"{torch.finfo(torch.float32).min:.1e}".replace("e+38", "e38"),)


def dot_std_512():
    return (f"{math.sqrt(512):.1f}",)


# -- the facts: (file, sentence with {} for each computed value, computation) -------------------
FACTS = [
    (EX / "05_softmax.md", "float32 at about {}, float16 at about {}", exp_overflow),
    (HINTS / "05_softmax.md", "float16 overflows past exp({})", float16_exp_overflow),
    (HINTS / "04_mask.md", "its largest magnitude is {}", float16_max),
    (HINTS / "04_mask.md", "float32's min (about {})", float32_min),
    (EX / "13_kv_cache.md", "{} KiB per token", llama_per_token),
    (EX / "13_kv_cache.md", "so {} GiB at batch 1 and 8k tokens against {} GB of weights, but {} GiB at batch 32",
     llama_batches),
    (EX / "11_grouped_query_attention.md",
     "at batch 1 and 8k tokens the cache is {} GiB next to {} GB of weights; at batch 32 it is {} GiB", llama_batches),
    (EX / "11_grouped_query_attention.md", "2·8192·32·8·128·2 bytes = {} GiB per sequence, {} of what 32 kv heads",
     gqa_example),
    (EX / "10_multi_head_attention.md", "Per token the projections cost {} multiply-adds and attention {}",
     cost_sentence),
    (EX / "10_multi_head_attention.md", "the attention term wins once S exceeds about {}.", crossover),
    (QUIZ, "projections (Q, K, V, out) add {}, so they dominate while L < {}", quiz_crossover),
    (EX / "08_output_projection.md", "this makes the {} parameters of an attention layer", mha_parameters),
    (EX / "15_attention_backward.md", "The backward costs about {} the forward", backward_over_forward),
    (EX / "14_flash_attention.md", "{} of the {}² tiles remain".replace("{}²", "n²").replace("{} of", "n(n + 1)/2 of")
     + ", {} of {} ({}%) for n = {}", causal_tiles),
    (REPO / "grader" / "tests" / "test_14_flash_attention.py", "with skipping it is about {}%", causal_percent),
    (HINTS / "12_positional_encoding.md", "float16 steps by {} and bfloat16 by {}", half_precision_steps),
    (REPO / "grader" / "tests" / "test_12_positional_encoding.py", "float16 holds 1000 only to ±{} and bfloat16 to ±{}",
     rounding_at_1000),
    (REPO / "grader" / "tests" / "test_11_grouped_query_attention.py",
     "(80 layers, head_dim 128, 4096 tokens, float16) caches {:,} bytes \" f\"with 8 kv heads and 8 times that with 64",
     gqa_70b),
    (EX / "01_project.md", "While the sequence is shorter than about {}", crossover),
    (EX / "11_grouped_query_attention.py", "at batch 1, 8192 tokens give {} bytes ({} GiB); with 32 kv heads (no GQA) "
                                           "it would be {} GiB", stub_11_example),
    (QUIZ, "sqrt(512) ≈ {}", dot_std_512),
]


@pytest.mark.parametrize("path, sentence, compute", FACTS,
                         ids=[f"{p.name}:{s[:40]}" for p, s, _ in FACTS])
def test_the_text_states_what_is_computed(path, sentence, compute):
    stated = " ".join(sentence.format(*compute()).split())
    assert stated in text(path), f"{path.relative_to(REPO)} no longer says: {stated}"


def says(path, phrase):
    assert " ".join(phrase.split()) in text(path), f"{path.relative_to(REPO)} no longer says: {phrase}"


# -- behaviours, measured, each tied to the sentence that states it -------------------------------
def test_fills_that_do_not_fit_float16_raise():
    scores = torch.zeros(2, 2, dtype=torch.float16)
    mask = torch.eye(2, dtype=torch.bool)
    for value, phrase in ((-1e9, "`masked_fill` on float16 scores raises"),
                          (torch.finfo(torch.float32).min, "masked_fill` on float16 scores raises an overflow")):
        says(HINTS / "04_mask.md", phrase)
        with pytest.raises(RuntimeError, match="overflow"):
            scores.masked_fill(mask, value)
    says(CONVENTIONS, "−1e9 does not fit float16 (`masked_fill` raises), and neither does float32's minimum")
    says(HINTS / "04_mask.md", "cast to float16, becomes -inf")
    assert torch.isneginf(torch.tensor(torch.finfo(torch.float32).min).to(torch.float16))


def test_an_all_minus_inf_row_is_nan_in_every_dtype_and_the_finite_fill_is_uniform():
    for dtype in DTYPES:
        assert torch.isnan(torch.softmax(torch.full((4,), -math.inf, dtype=dtype), -1)).all(), dtype
        row = torch.zeros(4, dtype=dtype).masked_fill(torch.ones(4, dtype=torch.bool), torch.finfo(dtype).min)
        wide = torch.promote_types(dtype, torch.float32)
        assert torch.allclose(torch.softmax(row.to(wide), -1), torch.full((4,), 0.25, dtype=wide))
    says(EX / "05_softmax.md", "is NaN in every dtype")
    says(CONVENTIONS, "| `torch.softmax` of a row of −inf | NaN: the row max is −inf, and −inf − (−inf) is NaN |")
    says(CONVENTIONS, "The NaN is not a float16 problem: −inf − (−inf) is NaN in every dtype.")
    says(REPO / "solutions" / "04_mask.py", "an all -inf row is NaN in every dtype")


def test_what_true_means_in_each_boolean_mask():
    q, k, v = torch.randn(1, 1, 3, 4), torch.randn(1, 1, 5, 4), torch.randn(1, 1, 5, 4)
    blocked = torch.rand(3, 5) < 0.4
    blocked[:, 0] = False                                         # every query keeps a key
    scores = q @ k.transpose(-2, -1) / 2
    ours = torch.softmax(scores.masked_fill(blocked, -math.inf), -1) @ v
    # SDPA: True = attend, so our mask goes in inverted; a float mask is added.
    assert torch.allclose(F.scaled_dot_product_attention(q, k, v, attn_mask=~blocked), ours, atol=1e-6)
    assert not torch.allclose(F.scaled_dot_product_attention(q, k, v, attn_mask=blocked), ours, atol=1e-3)
    bias = torch.randn(3, 5)
    assert torch.allclose(F.scaled_dot_product_attention(q, k, v, attn_mask=bias),
                          torch.softmax(scores + bias, -1) @ v, atol=1e-6)
    says(CONVENTIONS, "| `F.scaled_dot_product_attention`: `attn_mask` | **attend**: the key takes part | added to the scores |")
    says(CONVENTIONS, "To hand this course's mask to SDPA, pass `attn_mask=~mask`.")
    # nn.MultiheadAttention: True = blocked, in attn_mask and key_padding_mask; a float mask is added.
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    x, ctx = torch.randn(1, 3, 8), torch.randn(1, 5, 8)
    with torch.no_grad():
        _, w = mha(x, ctx, ctx, attn_mask=blocked, average_attn_weights=False)
        _, w_pad = mha(x, ctx, ctx, key_padding_mask=blocked[:1], average_attn_weights=False)
        _, w_add = mha(x, ctx, ctx, attn_mask=torch.zeros(3, 5).masked_fill(blocked, -math.inf),
                       average_attn_weights=False)
    assert (w[..., blocked] == 0).all() and (w[..., ~blocked] > 0).all()
    assert (w_pad[..., blocked[0]] == 0).all()
    assert torch.allclose(w, w_add)
    says(CONVENTIONS, "| `nn.MultiheadAttention`: `attn_mask`, `key_padding_mask` | **blocked** (not allowed to attend) "
                      "| added to the scores |")
    says(EX / "10_multi_head_attention.md", "bool masks with True = blocked (the opposite of "
                                            "`F.scaled_dot_product_attention`'s)")


def test_where_each_causal_flag_aligns():
    L, S = 3, 7
    q, k, v = torch.randn(1, 1, L, 4), torch.randn(1, 1, S, 4), torch.randn(1, 1, S, 4)
    top_left = torch.ones(L, S, dtype=torch.bool).tril()                  # attend where True
    bottom_right = torch.ones(L, S, dtype=torch.bool).tril(S - L)
    sdpa = F.scaled_dot_product_attention
    assert torch.allclose(sdpa(q, k, v, is_causal=True), sdpa(q, k, v, attn_mask=top_left), atol=1e-6)
    says(CONVENTIONS, "| `F.scaled_dot_product_attention(is_causal=True)` | top-left | j ≤ i |")
    from torch.nn.attention.bias import causal_lower_right
    assert torch.allclose(sdpa(q, k, v, attn_mask=causal_lower_right(L, S)), sdpa(q, k, v, attn_mask=bottom_right),
                          atol=1e-6)
    says(CONVENTIONS, "| `torch.nn.attention.bias.causal_lower_right(L, S)`, as SDPA's `attn_mask` | bottom-right "
                      "| j ≤ i + (S − L) |")
    ours = solution("04_mask").causal_mask(L, S)
    assert torch.equal(ours, ~bottom_right)
    says(CONVENTIONS, "| this course: `causal_mask(L, S)` (04), `is_causal` (10), 13's decoding, `causal` (14, 15) "
                      "| bottom-right | j ≤ i + (S − L) |")
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    x = torch.randn(1, S, 8)
    with pytest.raises(RuntimeError, match="attn_mask"):
        mha(x, x, x, is_causal=True)
    nothing = torch.zeros(S, S, dtype=torch.bool)
    with torch.no_grad():
        assert torch.equal(mha(x, x, x, attn_mask=nothing, is_causal=True)[0], mha(x, x, x, attn_mask=nothing)[0])
        fast = mha(x, x, x, is_causal=True)[0]                    # eval, no gradients: the fast path
        assert torch.allclose(fast, mha(x, x, x)[0])
    says(CONVENTIONS, "| `nn.MultiheadAttention(is_causal=True)` | a hint only: it needs `attn_mask`, and applies that mask |")
    says(CONVENTIONS, "Without `attn_mask`, `nn.MultiheadAttention(is_causal=True)` raises, except on its inference fast "
                      "path (eval mode, no gradients), where it silently attends to every key")


def test_what_a_row_that_sees_no_key_returns():
    sdpa09 = solution("09_scaled_dot_product_attention").scaled_dot_product_attention
    softmax05 = solution("05_softmax").softmax
    flash14 = solution("14_flash_attention").flash_attention
    MHA10 = solution("10_multi_head_attention").MultiHeadAttention
    blocked = torch.tensor([[True] * 4, [False, True, True, True]])
    for dtype in DTYPES:
        q, k, v = (torch.randn(1, 1, n, 4).to(dtype) for n in (2, 4, 4))
        out, probs = sdpa09(q, k, v, mask=blocked)
        assert torch.allclose(probs[0, 0, 0].float(), torch.full((4,), 0.25)) and torch.isfinite(out).all()
        assert torch.equal(softmax05(torch.full((3,), -math.inf, dtype=dtype)), torch.zeros(3, dtype=dtype))
        o, lse = flash14(q, k[:, :, :1], v[:, :, :1], causal=True)            # L = 2 > S = 1: query 0 sees no key
        assert (o[0, 0, 0] == 0).all() and torch.isneginf(lse[0, 0, 0])
        assert (F.scaled_dot_product_attention(q, k, v, attn_mask=~blocked)[0, 0, 0] == 0).all()
        mha = nn.MultiheadAttention(8, 2, batch_first=True).to(dtype).eval()
        x, ctx = torch.randn(1, 2, 8).to(dtype), torch.randn(1, 4, 8).to(dtype)
        with torch.no_grad():
            assert torch.isnan(mha(x, ctx, ctx, attn_mask=blocked)[0][0, 0]).all()
            ours = MHA10(8, 2).to(dtype).eval()(x, ctx, ctx, attn_mask=blocked)
        assert torch.isfinite(ours).all()
    says(CONVENTIONS, "| this course's 04 fill, then softmax (09, 10, 11, 13) | finite: `finfo(dtype).min` fills the "
                      "row, so its weights are uniform, 1/S each |")
    says(CONVENTIONS, "| this course's 05 `softmax` of a row of −inf | zeros |")
    says(CONVENTIONS, "| this course's 14 `flash_attention` | out = 0, lse = −inf |")
    says(CONVENTIONS, "| `nn.MultiheadAttention` | NaN |")
    says(CONVENTIONS, "| `F.scaled_dot_product_attention`, CPU (math and flash kernels) | zeros")
    says(EX / "10_multi_head_attention.md", "a row that sees no key is finite (nn.MultiheadAttention gives NaN)")


def test_value_has_no_default_in_torch():
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    x = torch.randn(1, 3, 8)
    with pytest.raises((TypeError, AttributeError)):
        mha(x, x)                                               # value is required
    with pytest.raises((TypeError, AttributeError)):
        mha(x, x, None)
    says(REPO / "grader" / "tests" / "test_10_multi_head_attention.py",
         "(nn.MultiheadAttention has no default for value: it requires query, key and value)")
    says(EX / "10_multi_head_attention.md", "key defaults to query and value to key (nn.MultiheadAttention requires all three)")


def test_rope_depends_on_the_signed_offset_and_attention_without_positions_is_equivariant():
    q, k = torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    rope = solution("12_positional_encoding").apply_rope

    def score(m, n):
        pos = torch.tensor([m, n])
        r = rope(torch.stack([q, k])[None], pos)[0]
        return float(r[0] @ r[1])

    assert math.isclose(score(7, 4), score(104, 101))              # offset +3, wherever it sits
    assert not math.isclose(score(7, 4), score(4, 7))              # offset −3: another score
    for path, phrase in ((EX / "12_positional_encoding.md", "depends only on the signed offset m − n (not on the "
                                                            "distance |m − n|: offsets +3 and −3"),
                         (EX / "12_positional_encoding.py", "depends only on the signed offset m - n"),
                         (REPO / "solutions" / "12_positional_encoding.py", "only on the signed offset m − n"),
                         (REPO / "grader" / "tests" / "test_12_positional_encoding.py",
                          "depends only on the signed offset p_q − p_k")):
        says(path, phrase)
    # Without positions and without a mask, self-attention is permutation-equivariant, not invariant.
    x = torch.randn(5, 8, dtype=torch.float64)
    perm = torch.tensor([3, 0, 4, 1, 2])
    attend = lambda t: torch.softmax(t @ t.T, -1) @ t
    assert torch.allclose(attend(x[perm]), attend(x)[perm]) and not torch.allclose(attend(x[perm]), attend(x))
    causal = lambda t: torch.softmax((t @ t.T).masked_fill(torch.ones(5, 5, dtype=torch.bool).triu(1), -math.inf),
                                     -1) @ t
    assert not torch.allclose(causal(x[perm]), causal(x)[perm])    # a causal mask carries order
    for path in (EX / "12_positional_encoding.md", EX / "12_positional_encoding.py",
                 REPO / "solutions" / "12_positional_encoding.py"):
        says(path, "without a causal mask is permutation-equivariant")


def test_no_learner_facing_text_repeats_a_claim_found_wrong():
    """The claims issue 22 found wrong, in every text a learner reads."""
    wrong = ("permutation-invariant", "depends only on the distance", "depend on distance only",
             "values come from key, as in nn.MultiheadAttention", "in float16 an all -inf row gives NaN",
             "dominates only while L < d", "which halves the work", "causal skipping halves")
    folders = ("exercises", "solutions", "grader/tests", "grader/public", "grader/quiz")
    files = [p for f in folders for p in (REPO / f).rglob("*") if p.suffix in (".py", ".md")]
    files += [REPO / "README.md", REPO / "grader" / "diagnosis.py", REPO / "grader" / "interview.py"]
    for path in files:
        flat = text(path)
        for claim in wrong:
            assert claim not in flat, f"{path.relative_to(REPO)} still says: {claim}"
    # 15's reading renamed the scores Z (S counts the keys): its stub, hints, tests and quiz follow.
    for path in (EX / "15_attention_backward.py", HINTS / "15_attention_backward.md",
                 REPO / "grader" / "tests" / "test_15_attention_backward.py", QUIZ):
        flat = text(path)
        assert "dS" not in flat.replace("dS/", "") and "softmax(S)" not in flat, path.name
        assert "dZ" in flat, path.name


def test_numpy_transpose_reverses_every_axis():
    assert np.zeros((2, 3, 4, 5)).T.shape == (5, 4, 3, 2)
    says(HINTS / "15_attention_backward.md", "never `.T` (it reverses every axis of a batched array)")
