"""FlashAttention-style backward in NumPy: the cache keeps only the inputs, the output and each
row's logsumexp; P is recomputed from them, and the row-sum term is rowsum(dO ⊙ O)."""
import numpy as np


def _scores(q, k, causal):
    s = np.einsum("...ld,...sd->...ls", q, k) / np.sqrt(q.shape[-1])
    if causal:
        L, S = s.shape[-2:]
        i = np.arange(L)[:, None]
        j = np.arange(S)[None, :]
        s = np.where(j > i + (S - L), -np.inf, s)
    return s


def attention_forward(q, k, v, causal=False):
    s = _scores(q, k, causal)
    m = s.max(axis=-1, keepdims=True)
    lse = m + np.log(np.exp(s - m).sum(axis=-1, keepdims=True))     # (..., L, 1)
    out = np.einsum("...ls,...sd->...ld", np.exp(s - lse), v)
    return out, {"q": q, "k": k, "v": v, "out": out, "lse": lse, "causal": causal}


def attention_backward(dout, cache):
    q, k, v, out, lse = cache["q"], cache["k"], cache["v"], cache["out"], cache["lse"]
    p = np.exp(_scores(q, k, cache["causal"]) - lse)
    dv = np.einsum("...ls,...ld->...sd", p, dout)
    dp = np.einsum("...ld,...sd->...ls", dout, v)
    delta = (dout * out).sum(axis=-1, keepdims=True)                # = rowsum(dP ⊙ P)
    ds = p * (dp - delta) / np.sqrt(q.shape[-1])
    dq = np.einsum("...ls,...sd->...ld", ds, k)
    dk = np.einsum("...ls,...ld->...sd", ds, q)
    return dq, dk, dv
