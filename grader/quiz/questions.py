"""The quiz's question bank: every talking point as a multiple-choice or a numeric question.

One cohesive thing, and long because it is data: each `choice(...)` is one question with its
right answer, its wrong ones and the explanation, and each numeric generator draws fresh
parameters and computes the answer. Running a quiz is grader/quiz/__init__.py.

This module imports no torch: every answer is computed with the standard library.
"""
import math
from dataclasses import dataclass, field

from ..exercises import EXERCISES_DIR, REPO, with_stubs

TOPICS = {
    "scaling": "why 1/sqrt(d_k), and which axis softmax runs over",
    "masking": "masking before softmax, the finite fill in fp16",
    "complexity": "time and memory complexity, the cost of heads",
    "gqa": "MQA and GQA: KV cache size and savings",
    "positions": "permutation equivariance, positional encodings and RoPE",
    "flash": "FlashAttention: memory, tiling, recompute in the backward pass",
    "gradient": "the gradient through softmax and attention",
    "numpy": "NumPy versus PyTorch",
}
ALIASES = {"scale": "scaling", "sqrt": "scaling", "softmax": "scaling", "mask": "masking", "fp16": "masking",
           "complexity": "complexity", "memory": "complexity", "heads": "complexity", "mqa": "gqa",
           "kv": "gqa", "cache": "gqa", "kvcache": "gqa", "rope": "positions", "position": "positions",
           "permutation": "positions", "flashattention": "flash", "tiling": "flash", "backward": "gradient",
           "gradients": "gradient", "grad": "gradient", "np": "numpy"}

class _Readings(dict):
    """The reading each question cites, by exercise id; a copy without that exercise still quizzes."""
    def __missing__(self, ex_id):
        found = sorted(EXERCISES_DIR.glob(f"{ex_id}_*.md"))
        return found[0].relative_to(REPO).as_posix() if found else f"the reading of exercise {ex_id}"


READ = _Readings({ex.id: ex.reading.relative_to(REPO).as_posix() for ex in with_stubs()})
CONVENTIONS = (EXERCISES_DIR / "conventions.md").relative_to(REPO).as_posix()     # PyTorch's conventions, once

# Bytes per element and the largest finite value of the dtypes the questions use.
DTYPES = {"float32": (4, 3.4028234663852886e38), "float16": (2, 65504.0),
          "bfloat16": (2, 3.3895313892515355e38)}


@dataclass
class Question:
    key: str                 # "gqa.kv_cache_bytes"
    topic: str
    kind: str                # "choice" or "number"
    prompt: str
    explanation: str
    reading: str             # "exercises/11_grouped_query_attention.md § Complexity"
    choices: list = field(default_factory=list)
    answer: object = None    # choice: index into choices; number: the value
    params: dict = field(default_factory=dict)
    unit: str = ""
    rel_tol: float = 0.01
    abs_tol: float = 0.0

    @property
    def right_text(self):
        if self.kind == "choice":
            return f"{'abcdefgh'[self.answer]}) {self.choices[self.answer]}"
        return f"{fmt(self.answer)}{' ' + self.unit if self.unit else ''}"


def fmt(x):
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) < 1e15):
        return f"{int(x):,}"
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e6):
        return f"{x:.4g}"
    return f"{x:.4f}".rstrip("0").rstrip(".")


GENERATORS = []          # (key, topic, kind, function of a random.Random -> Question)


def choice(key, topic, reading, prompt, right, wrong, explanation):
    """A multiple-choice question: the right answer and three wrong ones, shuffled per draw."""
    def gen(rng):
        options = [right] + list(wrong)
        order = list(range(len(options)))
        rng.shuffle(order)
        return Question(key, topic, "choice", prompt, explanation, reading,
                        choices=[options[i] for i in order], answer=order.index(0))
    GENERATORS.append((key, topic, "choice", gen))


def numeric(key, topic, reading):
    """A numeric question: the function draws parameters and returns the Question's fields."""
    def wrap(fn):
        def gen(rng):
            f = fn(rng)
            return Question(key, topic, "number", reading=reading, **f)
        GENERATORS.append((key, topic, "number", gen))
        return fn
    return wrap


def dtype_bytes(name):
    return DTYPES[name][0]


# ============================================================================================
# scaling: why 1/sqrt(d_k), and which axis softmax runs over
# ============================================================================================
choice("scaling.why_sqrt", "scaling", READ["03"] + " § The idea",
       "Why are attention scores divided by sqrt(d_k)?",
       "q·k has variance d_k; the scale brings it back to 1, so the softmax does not saturate",
       ["It turns the dot products into cosine similarities between unit-length vectors",
        "It makes each row of scores sum to 1 before the softmax is applied",
        "It compensates for the scores being summed over the H heads of the layer"],
       "For independent entries of mean 0 and variance 1, q·k = Σ q_i k_i has variance d_k. Large scores "
       "push the softmax to one-hot, where its gradient is almost zero. Scaling by 1/sqrt(d_k) keeps the "
       "scores at unit variance whatever the head size.")
choice("scaling.saturation", "scaling", READ["03"] + " § The idea",
       "With d_k = 512 and no scaling, what goes wrong at the start of training?",
       "The softmax is nearly one-hot (score std ≈ 22) and its gradients vanish",
       ["Nothing: the softmax is invariant to the scale of the scores",
        "The softmax becomes uniform, so every key gets the same weight",
        "The scores overflow float32 and turn into inf"],
       "sqrt(512) ≈ 22.6: differences of tens between logits make exp() pick one key almost surely. The "
       "softmax Jacobian diag(p) − p pᵀ is then near zero, so little gradient flows. Softmax is invariant "
       "to adding a constant, not to scaling.")
choice("scaling.axis", "scaling", READ["05"] + " § The idea",
       "Scores have shape (B, H, L, S). Which axis does the softmax run over?",
       "S, the keys: each query's weights over the keys sum to 1",
       ["L, the queries: each key's weights over the queries sum to 1",
        "H, the heads: the heads share each query-key pair's weight",
        "L and S together: the whole (L, S) matrix sums to 1"],
       "Each query asks 'how much of each key do I take?': its weights over the S keys form a "
       "distribution. Softmax over L is a classic bug; the shapes stay the same, so only the values tell.")
choice("scaling.subtract_max", "scaling", READ["05"] + " § The idea",
       "Why do stable softmax implementations subtract the row maximum before exp?",
       "softmax(x − max) = softmax(x), and exp can no longer overflow",
       ["It sharpens the distribution, which makes training converge faster",
        "Without it the gradient of the softmax would come out wrong",
        "It removes the influence of masked positions on the other keys"],
       "The shift cancels between numerator and denominator. Without it, exp(1000) is inf in float32 (and "
       "exp(12) already is in float16), and inf/inf is NaN.")
choice("scaling.head_dim", "scaling", READ["10"] + " § The idea",
       "In multi-head attention with d_model = D and H heads, which d_k goes in the scale 1/sqrt(d_k)?",
       "D / H, the head size: each head's dot products have D / H terms",
       ["D, the model width: the scale must cover the full model",
        "H, the number of heads, since the heads' outputs are added",
        "L, the sequence length, since each row has L scores"],
       "Each head computes q_h · k_h over its own d_head = D / H features, so the variance of its scores "
       "is D / H. nn.MultiheadAttention scales by 1/sqrt(D / H).")


@numeric("scaling.dot_std", "scaling", READ["03"] + " § The idea")
def _dot_std(rng):
    d = rng.choice([16, 32, 64, 100, 128, 256, 512])
    return dict(prompt=f"q and k have d_k = {d} independent entries, each of mean 0 and variance 1. What is "
                       f"the standard deviation of the unscaled score q·k?",
                answer=math.sqrt(d), params={"d_k": d}, rel_tol=0.01,
                explanation=f"q·k is a sum of {d} independent products of variance 1: variance {d}, standard "
                            f"deviation sqrt({d}) = {math.sqrt(d):.3g}. Dividing by sqrt(d_k) brings it to 1.")


@numeric("scaling.wrong_scale_std", "scaling", READ["03"] + " § The idea")
def _wrong_scale_std(rng):
    d = rng.choice([16, 25, 64, 100, 128, 256])
    return dict(prompt=f"Someone scales scores by 1/d_k instead of 1/sqrt(d_k), with d_k = {d} and q, k "
                       f"entries of mean 0, variance 1. What is the standard deviation of their scaled scores?",
                answer=1 / math.sqrt(d), params={"d_k": d}, rel_tol=0.01,
                explanation=f"Unscaled std is sqrt({d}); dividing by {d} gives 1/sqrt({d}) = "
                            f"{1 / math.sqrt(d):.3g}: the scores shrink towards 0 as d_k grows and the "
                            f"softmax flattens towards uniform.")


@numeric("scaling.mha_scale", "scaling", READ["10"] + " § The idea")
def _mha_scale(rng):
    D, H = rng.choice([(512, 8), (768, 12), (1024, 16), (2048, 16), (4096, 32), (256, 4), (384, 6), (2048, 32)])
    return dict(prompt=f"Multi-head attention with d_model = {D} and {H} heads. What scale multiplies the "
                       f"scores? (a number, e.g. 0.125)",
                answer=1 / math.sqrt(D // H), params={"D": D, "H": H}, rel_tol=0.005,
                explanation=f"d_head = {D} / {H} = {D // H}, and each head's scores are scaled by "
                            f"1/sqrt({D // H}) = {1 / math.sqrt(D // H):.4g}.")


@numeric("scaling.exp_overflow", "scaling", READ["05"] + " § The idea")
def _exp_overflow(rng):
    name = rng.choice(["float16", "float16", "bfloat16", "float32"])
    top = DTYPES[name][1]
    return dict(prompt=f"In {name}, the largest finite value is {top:.5g}. Above which x does exp(x) overflow "
                       f"to inf? (two decimals)",
                answer=math.log(top), params={"dtype": name}, abs_tol=0.011, rel_tol=0.0,
                explanation=f"ln({top:.5g}) = {math.log(top):.2f}. In float16 that is only about 11: a score "
                            f"of 12 overflows, which is why softmax subtracts the max and why fp16 "
                            f"softmax is best computed in float32.")


# ============================================================================================
# masking: before softmax, the finite fill in fp16
# ============================================================================================
choice("masking.before_softmax", "masking", READ["04"] + " § The idea",
       "Why mask the scores before the softmax rather than zero the probabilities after it?",
       "Zeroing afterwards leaves rows that no longer sum to 1",
       ["Both orders are equivalent; masking first is only faster",
        "Masking after the softmax gives NaN in float32",
        "The softmax ignores zeros, so masking after it does nothing"],
       "Filling blocked scores with a very negative number makes exp() give 0 there, so the remaining "
       "keys share the whole mass. Zeroing after the softmax removes mass and leaves the rows unnormalised "
       "(renormalising afterwards works, but costs an extra pass).")
choice("masking.fp32_min_in_fp16", "masking", READ["04"] + " § The idea",
       "scores is a float16 tensor. What does scores.masked_fill(mask, torch.finfo(torch.float32).min) do?",
       "It raises a RuntimeError: the value overflows float16",
       ["It fills with -65504, float16's most negative value",
        "It fills with -inf, silently, which is fine",
        "It fills with 0, silently, after the overflow"],
       "-3.4e38 does not fit in float16 (whose range ends at ±65504), and masked_fill refuses the "
       "conversion. Use torch.finfo(scores.dtype).min: finite in every dtype.")
choice("masking.all_inf_row", "masking", CONVENTIONS + " § What a row that sees no key returns",
       "A query whose keys are all blocked with -inf: its row of scores goes through torch.softmax. What comes out?",
       "NaN in every entry, in every dtype",
       ["Zeros, since exp(-inf) is 0",
        "A uniform row, 1/S each",
        "NaN in float16 only; zeros in float32"],
       "The row max is -inf, x − max is NaN; without the shift, the sum of exps is 0 and 0/0 is NaN. "
       "nn.MultiheadAttention gives NaN there too (F.scaled_dot_product_attention, on CPU, returns zeros). The "
       "finite fill (finfo.min) keeps such rows finite.")
choice("masking.finite_fill_row", "masking", READ["04"] + " § The idea",
       "Blocked scores are filled with torch.finfo(dtype).min. What does the softmax give for a query whose keys are ALL blocked?",
       "Uniform weights, 1/S each: finite",
       ["NaN in every entry, as with -inf",
        "Zeros in every entry",
        "inf in float16, from an overflow"],
       "Every entry minus the row max is 0, exp gives 1, and the row is uniform: meaningless but finite, "
       "so no NaN spreads through the network. Such rows are usually padding queries and are ignored.")
choice("masking.finite_fill_partial", "masking", READ["04"] + " § The idea",
       "A row has some keys allowed and some blocked with finfo(dtype).min. What weight do the blocked keys get?",
       "Exactly 0: exp of the fill underflows",
       ["A tiny positive weight, so rows skew",
        "NaN, which then spreads through the row",
        "1/S each, as if they were not masked"],
       "After subtracting the row max (a real score), the blocked entries are about finfo.min, and exp "
       "of that underflows to exactly 0. The allowed keys get the whole mass.")
choice("masking.sdpa_bool", "masking", CONVENTIONS + " § What True means in a boolean mask",
       "Boolean masks: in nn.MultiheadAttention's attn_mask True means 'blocked'. What does True mean in "
       "torch.nn.functional.scaled_dot_product_attention's attn_mask?",
       "The opposite: True means the key takes part",
       ["The same: True means the key is blocked",
        "Boolean masks are not accepted there",
        "True means that the query is padding"],
       "PyTorch has both conventions: nn.MultiheadAttention (attn_mask and key_padding_mask) uses True = not "
       "allowed; F.scaled_dot_product_attention uses True = allowed. A float mask is added to the scores in both. "
       "Say which convention you use in an interview.")
choice("masking.padding_axis", "masking", READ["04"] + " § The idea",
       "A key_padding_mask of shape (B, S) marks padded tokens. Which axis of the (B, H, L, S) scores does it block?",
       "The key axis S, as (B, 1, 1, S)",
       ["The query axis L, as (B, 1, L, 1)",
        "Both L and S, as (B, 1, L, S)",
        "The head axis H, as (B, H, 1, 1)"],
       "Padding hides keys. Padded query rows still produce outputs; they are simply ignored by the loss. "
       "Blocking queries instead would make whole rows fully masked.")
choice("masking.bottom_right", "masking", READ["04"] + " § The idea",
       "Decoding with a KV cache: 1 new query against S = 10 stored keys. With a bottom-right aligned causal mask, which keys does the query see?",
       "All 10 keys",
       ["Only key 0, as in row 0 of torch.tril",
        "None: everything above the diagonal is blocked",
        "Only the last key, its own"],
       "With L queries and S keys, query i is the (S − L + i)-th token, so it may see keys j ≤ i + S − L. "
       "torch.tril(ones(L, S)) is top-left aligned and is wrong for L < S.")


@numeric("masking.causal_blocked", "masking", READ["04"] + " § Shapes")
def _causal_blocked(rng):
    L = rng.randint(2, 9)
    S = L + rng.randint(0, 6)
    blocked = sum(S - max(0, min(S, i + (S - L) + 1)) for i in range(L))
    return dict(prompt=f"A bottom-right aligned causal mask for L = {L} queries and S = {S} keys (key j is "
                       f"blocked for query i when j > i + (S − L)). How many entries are blocked (True)?",
                answer=blocked, params={"L": L, "S": S}, rel_tol=0.0, abs_tol=0.0,
                explanation=f"Query i sees i + {S - L} + 1 keys, so it has {L - 1} − i blocked: "
                            f"{L - 1} + ... + 0 = {blocked}.")


@numeric("masking.pairs_allowed", "masking", READ["04"] + " § Shapes")
def _pairs_allowed(rng):
    T = rng.randint(4, 8)
    lengths = [rng.randint(1, T) for _ in range(rng.randint(2, 3))]
    total = sum(sum(min(i + 1, n) for i in range(T)) for n in lengths)
    return dict(prompt=f"A batch of {len(lengths)} sequences padded to T = {T} (real lengths {lengths}), "
                       f"self-attention with a causal mask and a key padding mask combined. Counting every "
                       f"query row, padded ones too, how many (sequence, query, key) pairs are allowed?",
                answer=total, params={"T": T, "lengths": lengths}, rel_tol=0.0, abs_tol=0.0,
                explanation="Query i of a sequence of length n sees keys j ≤ i that are not padding: "
                            "min(i + 1, n) keys. Summed over queries and sequences: " + f"{total}.")


# ============================================================================================
# complexity: time, memory, the cost of heads
# ============================================================================================
choice("complexity.time", "complexity", READ["10"] + " § Complexity",
       "Self-attention over L tokens of width d (projections aside): what is the time complexity?",
       "O(L²·d)",
       ["O(L·d²)",
        "O(L·d)",
        "O(L³)"],
       "QKᵀ is (L, d) @ (d, L): L²·d multiply-adds; PV is (L, L) @ (L, d): L²·d again, 2·L²·d in all. The four "
       "projections (Q, K, V, out) add 4·L·d², so they dominate while L < 2d, and attention takes over beyond.")
choice("complexity.memory", "complexity", READ["10"] + " § Complexity",
       "Self-attention over L tokens: what memory does standard multi-head attention need for its attention "
       "weights, per batch item?",
       "O(H·L²)",
       ["O(L·d)",
        "O(H·d²)",
        "O(H·L)"],
       "Each of the H heads materialises an (L, S) score matrix and its softmax; with L = S that is H·L² "
       "numbers, kept for the backward pass during training. FlashAttention removes exactly this term.")
choice("complexity.heads_cost", "complexity", READ["10"] + " § Complexity",
       "With d_model fixed, you double the number of heads H. What happens to the attention cost?",
       "The same matmul FLOPs, twice the score memory",
       ["Twice the matmul FLOPs, twice the score memory",
        "Twice the matmul FLOPs, the same score memory",
        "The same matmul FLOPs and the same score memory"],
       "QKᵀ costs H·L²·(D/H) = L²·D whatever H is, and so does PV. But each head has its own (L, S) matrix, so "
       "memory for scores and weights is H·L² and grows with H, as does the work of masking and the softmax "
       "over them. Small heads also use the hardware less well.")
choice("complexity.double_L", "complexity", READ["10"] + " § Complexity",
       "You double the sequence length. By what factor does the cost of the score matrix grow?",
       "4",
       ["2",
        "8",
        "sqrt(2)"],
       "The (L, L) matrix has L² entries, each a length-d dot product: doubling L quadruples both time and memory.")


@numeric("complexity.score_bytes", "complexity", READ["10"] + " § Complexity")
def _score_bytes(rng):
    B, H = rng.choice([1, 2, 4, 8]), rng.choice([8, 12, 16, 32])
    L = rng.choice([512, 1024, 2048, 4096])
    dt = rng.choice(["float32", "float16"])
    size = B * H * L * L * dtype_bytes(dt)
    return dict(prompt=f"Standard attention materialises the scores (B, H, L, L) with B = {B}, H = {H}, "
                       f"L = {L} in {dt}. How many MiB (2^20 bytes) is that one tensor?",
                answer=size / 2 ** 20, unit="MiB", params={"B": B, "H": H, "L": L, "dtype": dt}, rel_tol=0.01,
                explanation=f"{B}·{H}·{L}²·{dtype_bytes(dt)} bytes = {size:,} bytes = {size / 2 ** 20:,.0f} MiB: "
                            f"quadratic in L, and per layer.")


@numeric("complexity.qk_flops", "complexity", READ["03"] + " § Complexity")
def _qk_flops(rng):
    B, H = rng.choice([1, 2, 4]), rng.choice([4, 8, 16])
    L, S = rng.choice([256, 512, 1024]), rng.choice([128, 384, 1024, 2048])
    d = rng.choice([32, 64, 128])
    flops = 2 * B * H * L * S * d
    return dict(prompt=f"How many GFLOPs (10^9) does Q @ Kᵀ take for q (B={B}, H={H}, L={L}, d_k={d}) and "
                       f"k (B, H, S={S}, d_k)? Count a multiply-add as 2 FLOPs.",
                answer=flops / 1e9, unit="GFLOP", params={"B": B, "H": H, "L": L, "S": S, "d": d}, rel_tol=0.01,
                explanation=f"B·H·L·S dot products of length d_k, 2 FLOPs each: 2·{B}·{H}·{L}·{S}·{d} = "
                            f"{flops:,} FLOPs.")


@numeric("complexity.mha_params", "complexity", READ["10"] + " § Shapes")
def _mha_params(rng):
    D = rng.choice([64, 128, 256, 512, 768, 1024])
    bias = rng.choice([True, False])
    n = 4 * D * D + (4 * D if bias else 0)
    return dict(prompt=f"How many parameters has a multi-head attention layer with d_model = {D} "
                       f"({'with' if bias else 'without'} biases), as nn.MultiheadAttention builds it?",
                answer=n, params={"D": D, "bias": bias}, rel_tol=0.0,
                explanation=f"Four D×D projections (q, k, v, out){' and four biases of D' if bias else ''}: "
                            f"{n:,}. The number of heads does not change it.")


# ============================================================================================
# gqa: MQA and GQA cache savings
# ============================================================================================
choice("gqa.mqa", "gqa", READ["11"] + " § The idea",
       "What is multi-query attention (MQA)?",
       "All query heads share one key head and one value head",
       ["Each head reads several query tokens per position",
        "Several sequences of the batch share one query head",
        "Query heads are averaged into one before the softmax"],
       "MQA keeps H query heads but one K and one V head; GQA is the middle ground with 1 < H_kv < H_q "
       "groups. Both shrink the KV cache by H_q / H_kv.")
choice("gqa.what_saves", "gqa", READ["11"] + " § Complexity",
       "What does grouped-query attention mainly save during autoregressive decoding?",
       "KV cache memory and bandwidth, by H_q / H_kv",
       ["The FLOPs of Q @ Kᵀ, by H_q / H_kv",
        "The query projection's weights, by H_q / H_kv",
        "Nothing at inference: it only speeds up training"],
       "Decoding is memory-bound: each new token reads the whole cache. With fewer K/V heads the cache, "
       "and the bytes read per token, shrink by H_q / H_kv; the score FLOPs stay those of H_q heads.")
choice("gqa.head_map", "gqa", READ["11"] + " § Shapes",
       "GQA with H_q query heads and H_kv key/value heads, n_rep = H_q / H_kv. Which kv head does query head h read?",
       "h // n_rep",
       ["h % H_kv",
        "h * n_rep",
        "h % n_rep"],
       "repeat_kv repeats each kv head n_rep times side by side, so heads 0..n_rep−1 read kv head 0. "
       "Using x.repeat (tiling) instead gives h % H_kv, a silent bug.")
choice("gqa.cache_quality", "gqa", READ["11"] + " § Say it out loud",
       "Why do many models choose GQA (for example 8 kv heads) rather than MQA?",
       "MQA loses quality; GQA keeps near-MHA quality with most of the savings",
       ["MQA is slower than multi-head attention at decoding time",
        "MQA cannot be combined with a causal mask in a decoder",
        "GQA needs no KV cache at all, so it saves more memory"],
       "GQA interpolates between MHA (H_kv = H_q) and MQA (H_kv = 1). The cache shrinks by H_q / H_kv, and "
       "quality stays close to MHA; an MHA checkpoint can be converted by mean-pooling its kv heads into groups, "
       "then training briefly (uptraining).")


@numeric("gqa.kv_cache_bytes", "gqa", READ["13"] + " § Complexity")
def _kv_cache_bytes(rng):
    layers = rng.choice([12, 24, 32, 40, 80])
    kv = rng.choice([1, 2, 4, 8, 16, 32])
    hd = rng.choice([64, 128])
    seq = rng.choice([2048, 4096, 8192, 32768])
    batch = rng.choice([1, 2, 4, 8])
    dt = rng.choice(["float16", "bfloat16", "float32"])
    size = 2 * layers * kv * hd * seq * batch * dtype_bytes(dt)
    return dict(prompt=f"KV cache size: {layers} layers, {kv} KV heads of size {hd}, context {seq} tokens, "
                       f"batch {batch}, {dt}. How many GiB (2^30 bytes) hold the keys and values?",
                answer=size / 2 ** 30, unit="GiB", rel_tol=0.01,
                params={"layers": layers, "kv_heads": kv, "head_dim": hd, "seq": seq, "batch": batch, "dtype": dt},
                explanation=f"2 (K and V) · {layers} layers · {kv} heads · {hd} · {seq} tokens · {batch} · "
                            f"{dtype_bytes(dt)} bytes = {size:,} bytes = {size / 2 ** 30:.3g} GiB.")


@numeric("gqa.saving_factor", "gqa", READ["11"] + " § Complexity")
def _saving_factor(rng):
    kv = rng.choice([1, 2, 4, 8])
    hq = kv * rng.choice([2, 4, 8, 16])
    return dict(prompt=f"A model goes from {hq}-head multi-head attention to GQA with {kv} KV head"
                       f"{'s' * (kv != 1)}, everything else equal. By what factor does the KV cache shrink?",
                answer=hq / kv, params={"H_q": hq, "H_kv": kv}, rel_tol=0.0, abs_tol=1e-9,
                explanation=f"The cache holds H_kv heads instead of H_q: {hq} / {kv} = {hq // kv}×.")


@numeric("gqa.max_context", "gqa", READ["13"] + " § Complexity")
def _max_context(rng):
    budget = rng.choice([4, 8, 16, 24, 40])
    layers = rng.choice([16, 24, 32, 48])
    kv = rng.choice([2, 4, 8])
    hd = rng.choice([64, 128])
    batch = rng.choice([1, 2, 4])
    dt = rng.choice(["float16", "float32"])
    per_token = 2 * layers * kv * hd * batch * dtype_bytes(dt)
    return dict(prompt=f"You have {budget} GiB for the KV cache: {layers} layers, {kv} KV heads of size {hd}, "
                       f"batch {batch}, {dt}. What is the longest context (whole tokens) that fits?",
                answer=(budget * 2 ** 30) // per_token, unit="tokens", rel_tol=0.0, abs_tol=0.0,
                params={"budget_gib": budget, "layers": layers, "kv_heads": kv, "head_dim": hd, "batch": batch,
                        "dtype": dt},
                explanation=f"Each token costs 2·{layers}·{kv}·{hd}·{batch}·{dtype_bytes(dt)} = {per_token:,} "
                            f"bytes; {budget}·2^30 / {per_token:,} = {(budget * 2 ** 30) // per_token:,} tokens "
                            f"(rounded down).")


@numeric("gqa.proj_params_saved", "gqa", READ["11"] + " § Complexity")
def _proj_params_saved(rng):
    D, H = rng.choice([(512, 8), (1024, 16), (2048, 16), (4096, 32), (768, 12)])
    kv = rng.choice([x for x in (1, 2, 4, 8) if H % x == 0 and x < H])
    d = D // H
    saved = 2 * D * D - 2 * D * kv * d
    return dict(prompt=f"d_model = {D}, {H} query heads. Switching from multi-head attention to GQA with {kv} "
                       f"KV heads, how many weights do the key and value projections lose (no biases)?",
                answer=saved, params={"D": D, "H": H, "H_kv": kv}, rel_tol=0.0,
                explanation=f"k_proj and v_proj go from {D}×{D} to {D}×{kv * d} ({kv} heads of {d}): "
                            f"2·{D}·({D} − {kv * d}) = {saved:,} weights.")


# ============================================================================================
# positions: permutation equivariance, encodings, RoPE
# ============================================================================================
choice("positions.permutation", "positions", READ["12"] + " § The idea",
       "Self-attention without positional information and without a mask: you permute the input tokens. What happens to the output?",
       "It is permuted the same way, otherwise unchanged",
       ["It changes completely, since the keys moved",
        "It stays the same, in the original order",
        "Only the first token's output changes"],
       "Self-attention is permutation-equivariant: every token attends to the same set of keys whatever "
       "their order, and a sum over keys ignores order. So attention sees a bag of tokens; positional "
       "encodings (added, or RoPE) break the symmetry.")
choice("positions.rope_relative", "positions", READ["12"] + " § The idea",
       "With RoPE on q (position m) and k (position n), the score q·k depends on the positions only through:",
       "The signed offset m − n",
       ["The absolute positions m and n separately",
        "The distance |m − n|, whatever its sign",
        "m + n"],
       "Rotating q by angle m·θ and k by n·θ leaves their dot product depending on the rotation by (m − n)·θ. "
       "The sign matters: offsets +3 and −3 rotate in opposite directions and generally give different scores.")
choice("positions.rope_where", "positions", READ["12"] + " § The idea",
       "Where is RoPE applied?",
       "To q and k in every layer, after the projections",
       ["To the token embeddings, once, at the input",
        "To the values only, in every layer",
        "To the attention weights, after the softmax"],
       "RoPE rotates q and k so that their dot products encode relative position; values carry content "
       "and are not rotated. Sinusoidal encodings are added once to the embeddings.")
choice("positions.rope_norm", "positions", READ["12"] + " § The idea",
       "Does RoPE change the norm of a query vector?",
       "No: rotations preserve length",
       ["Yes: it scales q by its position",
        "Yes: it adds a vector of norm 1",
        "Only at odd positions"],
       "Each pair (x_i, x_{i+d/2}) is rotated by angle p·θ_i. A rotation is orthogonal, so |q| stays the "
       "same and only the angle between q and k changes.")
choice("positions.rope_pairing", "positions", READ["12"] + " § Shapes",
       "In the rotate-half convention (GPT-NeoX, Llama in Hugging Face), which features does RoPE rotate together?",
       "Feature i with feature i + d/2",
       ["Feature 2i with feature 2i + 1",
        "Feature i with feature d − 1 − i",
        "Every feature on its own"],
       "rotate_half splits the vector into halves: x·cos + rotate_half(x)·sin with rotate_half(x) = "
       "(−x2, x1). The original paper's interleaved pairs (2i, 2i+1) are the other convention: checkpoints "
       "are not interchangeable without permuting weights.")


@numeric("positions.rope_angle", "positions", READ["12"] + " § The idea")
def _rope_angle(rng):
    d = rng.choice([32, 64, 128])
    i = rng.randint(0, d // 2 - 1)
    p = rng.randint(1, 200)
    base = rng.choice([10000.0, 10000.0, 500000.0])
    return dict(prompt=f"RoPE with head size d = {d}, base {base:g}: through what angle (radians) is feature "
                       f"pair i = {i} rotated at position p = {p}? (θ = p · base^(−2i/d))",
                answer=p * base ** (-2 * i / d), params={"d": d, "i": i, "p": p, "base": base}, rel_tol=0.005,
                abs_tol=1e-6,
                explanation=f"θ = {p} · {base:g}^(−{2 * i}/{d}) = {p * base ** (-2 * i / d):.6g} rad. Low i "
                            f"rotate fast (fine positions), high i slowly (long range).")


@numeric("positions.sin_wavelength", "positions", READ["12"] + " § The idea")
def _sin_wavelength(rng):
    d = rng.choice([64, 128, 256, 512])
    i = rng.randint(0, d // 2 - 1)
    return dict(prompt=f"Sinusoidal encoding, d_model = {d}, base 10000: PE[p, 2i] = sin(p / 10000^(2i/d)). "
                       f"What is the wavelength (in positions) of the pair i = {i}?",
                answer=2 * math.pi * 10000 ** (2 * i / d), params={"d": d, "i": i}, rel_tol=0.005,
                explanation=f"sin(p·ω) repeats every 2π/ω positions, ω = 10000^(−{2 * i}/{d}): "
                            f"2π·10000^({2 * i}/{d}) = {2 * math.pi * 10000 ** (2 * i / d):.5g}. Wavelengths "
                            f"run geometrically from 2π to about 2π·10000.")


# ============================================================================================
# flash: memory, tiling, recompute in the backward
# ============================================================================================
choice("flash.memory", "flash", READ["14"] + " § Complexity",
       "Besides its inputs and output, how much memory does FlashAttention's forward pass need per (batch, head)?",
       "O(L): softmax statistics per query",
       ["O(L²), the same, in faster memory",
        "O(1): nothing is kept per query",
        "O(L·S / block_size): one per tile"],
       "It walks over key blocks keeping, per query, m (max), l (sum) and the output accumulator. The "
       "scores of a tile live in on-chip SRAM only. What is kept for the backward is the logsumexp: L numbers.")
choice("flash.exact", "flash", READ["14"] + " § The idea",
       "Is FlashAttention an approximation of attention?",
       "No: it is exact, and reorders the work to cut memory traffic",
       ["Yes: it drops the smallest attention weights",
        "Yes: it uses a low-rank approximation of the scores",
        "It is exact only when a causal mask is used"],
       "The online softmax rescales running sums whenever the max changes, which gives exactly softmax(Q Kᵀ · scale) V "
       "at the end. Sparse and low-rank methods approximate; FlashAttention does not.")
choice("flash.backward", "flash", READ["14"] + " § The idea",
       "What does FlashAttention's backward pass do about the attention matrix P it did not store?",
       "Recomputes P tile by tile from Q, K and the saved logsumexp",
       ["Stores P in the forward after all, in low precision",
        "Approximates the gradient without ever forming P",
        "Reruns the whole forward pass for every key block"],
       "p_ij = exp(s_ij − lse_i) needs only the scores of a tile and the L saved logsumexp values. The "
       "recompute adds FLOPs, yet it is faster than reading an L×S matrix from HBM.")
choice("flash.why_faster", "flash", READ["14"] + " § Complexity",
       "Why is FlashAttention faster than standard attention on a GPU, although its FLOPs are not lower?",
       "It never moves the L×S matrix through HBM: attention is memory-bound",
       ["It does fewer multiplications, thanks to the online softmax",
        "It computes the scores in a lower precision than the inputs",
        "It skips the keys whose attention weights are small"],
       "Standard attention writes the scores, reads them for the softmax, writes P, reads it for PV: O(L²) HBM "
       "traffic. "
       "Tiling keeps each block on chip, so traffic drops to roughly O(L²·d²/M) for SRAM size M.")
choice("flash.online_rescale", "flash", READ["14"] + " § The idea",
       "Online softmax: the running max goes from m_old to m_new with a new key block. What happens to the running sum l and the accumulator?",
       "Both are multiplied by exp(m_old − m_new)",
       ["Both are reset to zero",
        "Both are divided by the new block's sum",
        "Nothing: the max only matters at the end"],
       "Everything accumulated so far was exp(s − m_old); multiplying by exp(m_old − m_new) re-expresses it "
       "against m_new. At the end out = acc / l, exactly.")


@numeric("flash.online_sum", "flash", READ["14"] + " § The idea")
def _online_sum(rng):
    b1 = [rng.randint(-4, 4) for _ in range(3)]
    b2 = [rng.randint(-2, 6) for _ in range(3)]
    m1 = max(b1)
    l1 = sum(math.exp(s - m1) for s in b1)
    m2 = max(m1, max(b2))
    l2 = l1 * math.exp(m1 - m2) + sum(math.exp(s - m2) for s in b2)
    return dict(prompt=f"Online softmax for one query over two key blocks, scores {b1} then {b2}. After the "
                       f"second block, the running max is m = {m2}. What is the running sum l = Σ exp(s − m)? "
                       f"(three decimals)",
                answer=l2, params={"block1": b1, "block2": b2}, rel_tol=0.0, abs_tol=0.0015,
                explanation=f"After block 1: m = {m1}, l = {l1:.4f}. With block 2 the max is {m2}: l becomes "
                            f"{l1:.4f}·exp({m1} − {m2}) + Σ exp(s − {m2}) over block 2 = {l2:.4f}, the same "
                            f"as summing all six at once.")


@numeric("flash.causal_tiles", "flash", READ["14"] + " § Complexity")
def _causal_tiles(rng):
    bs = rng.choice([32, 64, 128])
    n = rng.randint(2, 16)
    L = n * bs
    return dict(prompt=f"Tiled causal attention with L = S = {L} and {bs}×{bs} tiles. Skipping the tiles that "
                       f"are wholly masked, how many tiles are computed?",
                answer=n * (n + 1) // 2, params={"L": L, "block": bs}, rel_tol=0.0, abs_tol=0.0,
                explanation=f"{n} query blocks; query block i needs key blocks 0..i: 1 + 2 + ... + {n} = "
                            f"{n * (n + 1) // 2} of {n * n} tiles, a fraction (n + 1)/(2n) = "
                            f"{100 * (n + 1) / (2 * n):.0f}%: a little over half, nearing half as n grows.")


# ============================================================================================
# gradient: through softmax and attention
# ============================================================================================
choice("gradient.jacobian", "gradient", READ["15"] + " § The idea",
       "p = softmax(x) over one row. What is the Jacobian ∂p/∂x?",
       "diag(p) − p pᵀ",
       ["diag(p)", "I − p pᵀ", "p (1 − p), elementwise, with no cross terms"],
       "∂p_i/∂x_j = p_i (δ_ij − p_j). The diagonal is p_i(1 − p_i); off-diagonal entries are −p_i p_j: "
       "raising one logit takes mass from all the others.")
choice("gradient.ds", "gradient", READ["15"] + " § The idea",
       "Backward through P = softmax(Z) row-wise (Z the scores), given dP. What is dZ?",
       "dZ = P ⊙ (dP − rowsum(dP ⊙ P))",
       ["dZ = dP ⊙ P, elementwise, no cross terms",
        "dZ = dP − rowsum(dP) · P, without the P factor",
        "dZ = P ⊙ (1 − P) ⊙ dP, the diagonal only"],
       "Apply the Jacobian diag(p) − p pᵀ to each row of dP: p ⊙ dp − p (p·dp). FlashAttention computes "
       "rowsum(dP ⊙ P) as rowsum(dO ⊙ O), which needs no P.")
choice("gradient.dv", "gradient", READ["15"] + " § The idea",
       "O = P V with P (L, S), V (S, d_v). Given dO (L, d_v), what is dV?",
       "Pᵀ dO",
       ["dO Vᵀ",
        "P dO",
        "dO Pᵀ"],
       "For a matmul O = P V: dV = Pᵀ dO and dP = dO Vᵀ. Check the shapes: (S, L) @ (L, d_v) = (S, d_v).")
choice("gradient.sum_zero", "gradient", READ["15"] + " § The idea",
       "The loss is the sum of the softmax outputs of a row, Σ_i p_i. What is its gradient with respect to the logits x?",
       "Zero",
       ["p",
        "1 − p",
        "A vector of ones"],
       "Σ p_i = 1 is constant, so its gradient vanishes: each column of diag(p) − p pᵀ sums to 0. A handy check "
       "for a hand-written softmax backward.")
choice("gradient.dq", "gradient", READ["15"] + " § The idea",
       "The scores are Z = Q Kᵀ · scale, with Q (L, d_k) and K (S, d_k). Given dZ, what is dQ?",
       "dZ K · scale",
       ["dZᵀ K · scale", "dZ Kᵀ · scale", "Q dZ · scale"],
       "From Z = scale · Q Kᵀ: dQ = scale · dZ K, shape (L, S) @ (S, d_k) = (L, d_k); and dK = scale · dZᵀ Q.")


@numeric("gradient.softmax_entry", "gradient", READ["15"] + " § The idea")
def _softmax_entry(rng):
    x = [rng.randint(-2, 2) for _ in range(3)]
    i, j = rng.randint(0, 2), rng.randint(0, 2)
    e = [math.exp(v) for v in x]
    p = [v / sum(e) for v in e]
    value = p[i] * ((1.0 if i == j else 0.0) - p[j])
    return dict(prompt=f"p = softmax(x) with x = {x}. What is ∂p_{i}/∂x_{j} (indices from 0)? (three decimals)",
                answer=value, params={"x": x, "i": i, "j": j}, rel_tol=0.0, abs_tol=0.0015,
                explanation=f"p = [{', '.join(f'{v:.4f}' for v in p)}]; ∂p_i/∂x_j = p_i(δ_ij − p_j) = {value:.4f}.")


# ============================================================================================
# numpy versus PyTorch
# ============================================================================================
choice("numpy.transpose", "numpy", READ["15"] + " § Shapes",
       "a is a NumPy array of shape (B, H, L, d). What is the shape of a.T?",
       "(d, L, H, B)",
       ["(B, H, d, L)",
        "(H, B, L, d)",
        "An error: .T needs 2 axes"],
       "NumPy's .T reverses all axes. For batched matrices write np.swapaxes(a, -1, -2) (PyTorch: "
       "x.transpose(-2, -1) or x.mT; its x.T on more than 2 dimensions is deprecated).")
choice("numpy.keywords", "numpy", READ["15"] + " § Shapes",
       "The row sum that keeps the reduced axis: which pair is right?",
       "NumPy: x.sum(axis=-1, keepdims=True); PyTorch: x.sum(dim=-1, keepdim=True)",
       ["NumPy: x.sum(dim=-1, keepdim=True); PyTorch: x.sum(axis=-1, keepdims=True)",
        "Both: x.sum(axis=-1, keepdim=True)",
        "Both: x.sum(-1, keep=True)"],
       "NumPy says axis and keepdims; PyTorch says dim and keepdim (it accepts axis and keepdims as aliases "
       "in many reductions, but the canonical names differ). In an interview, either is fine if you say it.")
choice("numpy.default_dtype", "numpy", READ["15"] + " § Shapes",
       "What are the default dtypes of np.random.randn(3) and torch.randn(3)?",
       "float64 for NumPy, float32 for PyTorch",
       ["float32 for both", "float64 for both", "float32 for NumPy, float64 for PyTorch"],
       "NumPy defaults to double precision; PyTorch to single. Mixing them (torch.from_numpy) silently "
       "brings float64 into a model.")
choice("numpy.max", "numpy", READ["05"] + " § Shapes",
       "What does torch.max(x, dim=-1) return, compared with np.max(x, axis=-1)?",
       "torch.max gives (values, indices); np.max, values only",
       ["Both return the same array of values, and nothing else",
        "Both return the indices of the maxima only, like argmax",
        "Both return a single scalar: the global maximum of x"],
       "torch.max with dim returns a namedtuple (values, indices). x.amax(dim=-1, keepdim=True) is the "
       "one to use in a softmax.")
choice("numpy.matmul", "numpy", READ["15"] + " § Shapes",
       "For batched arrays a (B, L, d) and b (B, d, S), which NumPy call gives the (B, L, S) batched product?",
       "a @ b (np.matmul)",
       ["np.dot(a, b)",
        "a * b",
        "np.outer(a, b)"],
       "np.dot on N-d arrays sums over the last axis of a and the second-to-last of b, giving (B, L, B, S). "
       "np.matmul / @ treats the leading axes as a batch, like torch.matmul.")


