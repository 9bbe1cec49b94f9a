"""The backward pass of attention, by hand, in NumPy (reference).

Forward: Z = Q Kᵀ · scale (the scores), P = softmax(Z) along keys, O = P V. Backward follows the chain rule
through the two products and the softmax. The softmax Jacobian is diag(p) - p pᵀ per row, which
applied to dP gives dZ = P ⊙ (dP - rowsum(dP ⊙ P)) without ever building a Jacobian.
"""
import numpy as np


def attention_forward(q, k, v, causal=False):
    """q (..., L, d_k), k (..., S, d_k), v (..., S, d_v) float64 -> out (..., L, d_v), cache."""
    scale = 1.0 / np.sqrt(q.shape[-1])
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * scale           # (..., L, S)
    if causal:
        L, S = s.shape[-2:]
        blocked = np.triu(np.ones((L, S), dtype=bool), k=S - L + 1)   # key j > i + (S - L)
        s = np.where(blocked, -np.inf, s)                      # exp(-inf) = 0: no probability
    s = s - s.max(axis=-1, keepdims=True)                      # stable: largest exponent is 0
    p = np.exp(s)
    p = p / p.sum(axis=-1, keepdims=True)                      # (..., L, S)
    out = np.matmul(p, v)                                      # (..., L, d_v)
    # P is all the backward needs beyond the inputs; keeping it avoids recomputing the softmax.
    return out, (q, k, v, p, scale)


def attention_backward(dout, cache):
    """dout (..., L, d_v) -> (dq, dk, dv), shaped like q, k, v."""
    q, k, v, p, scale = cache
    dv = np.matmul(np.swapaxes(p, -1, -2), dout)               # (..., S, d_v)  O = P V
    dp = np.matmul(dout, np.swapaxes(v, -1, -2))               # (..., L, S)
    # Softmax backward, row by row: dZ_j = P_j (dP_j - sum_i dP_i P_i). Blocked keys have P = 0.
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))       # (..., L, S)
    dq = np.matmul(ds, k) * scale                              # (..., L, d_k)  Z = Q Kᵀ · scale
    dk = np.matmul(np.swapaxes(ds, -1, -2), q) * scale         # (..., S, d_k)
    return dq, dk, dv
