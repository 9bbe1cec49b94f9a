"""Exercise 15 (follow-up): the backward pass of attention, by hand, in NumPy.

The interview question: "derive the gradients of attention." NumPy has no autograd, so you write
both passes yourself. Forward, per (batch, head), with scale = 1 / sqrt(d_k):

    Z = Q Kᵀ · scale        (L, S) scores        (blocked keys set to -inf when causal)
    P = softmax(Z)          (L, S) along keys
    O = P V                 (L, d_v)

Backward, given dO = dLoss/dO, follows the chain rule back through each line:

    dV = Pᵀ dO                                  from O = P V
    dP = dO Vᵀ
    dZ = P ⊙ (dP − rowsum(dP ⊙ P))              the softmax Jacobian, diag(p) − p pᵀ, per row
    dQ = dZ K · scale                           from Z = Q Kᵀ · scale
    dK = dZᵀ Q · scale

(The scores are called Z so that S can stay the number of keys.)

The forward pass returns a cache holding what the backward needs (here P and the inputs), just
as a framework saves activations. (FlashAttention instead keeps only the logsumexp and
recomputes P block by block in its backward pass, trading compute for memory.)

Rules: this file imports NumPy (and the standard library) only: no deep-learning framework and
no automatic-differentiation library may be imported here.

Forbidden in this file: automatic differentiation by any route (autograd, backward, vjp,
requires_grad, jacrev, ...): write the backward pass yourself.

Forbidden in this file: importing torch or any other deep-learning or automatic-differentiation
library (jax, tensorflow, autograd, ...): this file imports NumPy and the standard library only.
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

    Steps (batched: use `np.matmul` / `@`, and `np.swapaxes` on the last two axes, never `.T`,
    which reverses all axes):
        scale   float           1 / sqrt(d_k), d_k being q's last size (`np.sqrt`)
        z       (..., L, S)     the scores: every query against every key (k with its last two axes swapped),
                                times scale
        z       (..., L, S)     causal only: -inf where key j > i + (S - L), from an (L, S) bool mask
                                (`np.triu` of ones with the right diagonal offset, or two `np.arange`s)
                                applied with `np.where`; exp(-inf) = 0 gives blocked keys no weight
        z       (..., L, S)     minus its row max (`max` over the last axis with keepdims): the largest
                                exponent is 0
        p       (..., L, S)     exp of z, divided by its row sum (keepdims): every row sums to 1
        out     (..., L, d_v)   p weighting the values (a matrix product with v)
        cache   tuple           what the backward needs: the inputs, p and scale
        return (out, cache)
    """
    raise NotImplementedError("TODO: forward pass, then return out and a cache for the backward")


def attention_backward(dout, cache):
    """Gradients of a scalar loss with respect to q, k and v.

    Args:
        dout: float64 array (..., L, d_v), the gradient of the loss with respect to out.
        cache: what `attention_forward` returned.

    Returns:
        (dq, dk, dv): float64 arrays shaped like q (..., L, d_k), k (..., S, d_k), v (..., S, d_v).

    Steps (p (..., L, S) from the cache, dout (..., L, d_v)):
        unpack the cache
        dv      (..., S, d_v)   from O = P V: p with its last two axes swapped, times dout
        dp      (..., L, S)     from O = P V: dout times v with its last two axes swapped
        dz      (..., L, S)     the softmax backward, row by row: p times (dp minus the row sum of
                                dp ⊙ p, kept as (..., L, 1) with keepdims so it broadcasts)
        dq      (..., L, d_k)   from Z = Q Kᵀ · scale: dz times k, times scale
        dk      (..., S, d_k)   dz with its last two axes swapped, times q, times scale
        return (dq, dk, dv)

    Mistakes to avoid: dropping the row-sum term (that is the Jacobian of exp, not of softmax),
    and forgetting `scale` in dq or dk (the chain rule passes through Z = Q Kᵀ · scale).
    Blocked keys need no special case: their P is 0, so their dZ is 0.
    """
    raise NotImplementedError("TODO: chain rule back through P V, the softmax and Q Kᵀ")
