"""Exercise 15 (follow-up): the backward pass of attention, by hand, in NumPy.

The interview question: "derive the gradients of attention." NumPy has no autograd, so you write
both passes yourself. Forward, per (batch, head), with scale = 1 / sqrt(d_k):

    S = Q Kᵀ · scale        (L, S) scores        (blocked keys set to -inf when causal)
    P = softmax(S)          (L, S) along keys
    O = P V                 (L, d_v)

Backward, given dO = dLoss/dO, follows the chain rule back through each line:

    dV = Pᵀ dO                                  from O = P V
    dP = dO Vᵀ
    dS = P ⊙ (dP − rowsum(dP ⊙ P))              the softmax Jacobian, diag(p) − p pᵀ, per row
    dQ = dS K · scale                           from S = Q Kᵀ · scale
    dK = dSᵀ Q · scale

The forward pass returns a cache holding what the backward needs (here P and the inputs), just
as a framework saves activations. (FlashAttention instead keeps only the logsumexp and
recomputes P block by block in its backward pass, trading compute for memory.)

Rules: this file imports NumPy (and the standard library) only: no deep-learning framework and
no automatic-differentiation library may be imported here.
"""
import numpy as np


def attention_forward(q, k, v, causal=False):
    """Scaled dot-product attention forward, keeping what the backward needs.

    Args:
        q: float64 array (..., L, d_k); k: (..., S, d_k); v: (..., S, d_v), with the same leading
            (batch, head, ...) dimensions, possibly none.
        causal: if True, query i sees key j only when j <= i + (S - L) (bottom-right, L <= S).

    Returns:
        (out, cache): out (..., L, d_v) float64; cache, anything you like that
        `attention_backward` needs (a tuple is simplest). Inputs are not modified.

    Steps (batched: use np.matmul / @ and np.swapaxes(x, -1, -2), never .T, which reverses all axes):
        scale = 1 / np.sqrt(d_k)
        s = q @ np.swapaxes(k, -1, -2) * scale           # (..., L, d_k) @ (..., d_k, S) -> (..., L, S)
        s = np.where(blocked, -np.inf, s)                # (..., L, S)   causal only; blocked (L, S) = triu(k=S-L+1)
        s = s - s.max(axis=-1, keepdims=True)            # (..., L, S)   stable: largest exponent is 0
        p = np.exp(s); p /= p.sum(axis=-1, keepdims=True)  # (..., L, S) rows sum to 1
        out = p @ v                                      # (..., L, S) @ (..., S, d_v) -> (..., L, d_v)
        cache = (q, k, v, p, scale)
    """
    raise NotImplementedError("TODO: forward pass, then return out and a cache for the backward")


def attention_backward(dout, cache):
    """Gradients of a scalar loss with respect to q, k and v.

    Args:
        dout: float64 array (..., L, d_v), the gradient of the loss with respect to out.
        cache: what `attention_forward` returned.

    Returns:
        (dq, dk, dv): float64 arrays shaped like q (..., L, d_k), k (..., S, d_k), v (..., S, d_v).

    Steps:
        q, k, v, p, scale = cache
        dv = np.swapaxes(p, -1, -2) @ dout               # (..., S, L) @ (..., L, d_v) -> (..., S, d_v)
        dp = dout @ np.swapaxes(v, -1, -2)               # (..., L, d_v) @ (..., d_v, S) -> (..., L, S)
        ds = p * (dp - (dp * p).sum(-1, keepdims=True))  # (..., L, S)   softmax backward, row by row
        dq = ds @ k * scale                              # (..., L, S) @ (..., S, d_k) -> (..., L, d_k)
        dk = np.swapaxes(ds, -1, -2) @ q * scale         # (..., S, L) @ (..., L, d_k) -> (..., S, d_k)

    Mistakes to avoid: dropping the row-sum term (that is the Jacobian of exp, not of softmax),
    and forgetting `scale` in dq or dk (the chain rule passes through S = Q Kᵀ · scale).
    Blocked keys need no special case: their P is 0, so their dS is 0.
    """
    raise NotImplementedError("TODO: chain rule back through P V, the softmax and Q Kᵀ")
