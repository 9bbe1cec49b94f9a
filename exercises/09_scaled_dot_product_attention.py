"""Checklist steps 3 to 6 together: scaled dot-product attention.

    attention(q, k, v) = softmax(mask(q @ k^T / sqrt(d_k))) @ v

- Scale by 1/sqrt(d_k): the dot product of two random unit-variance vectors has variance d_k;
  scaling keeps the softmax out of saturation. `scale=None` means 1/sqrt(d_k); any number given,
  0.0 included, is used as it is.
- Mask the scores before the softmax (True = blocked), filling with
  torch.finfo(scores.dtype).min: zeroing probabilities after the softmax leaves rows that do not
  sum to 1, and a row of -inf turns NaN (in every dtype). A query whose keys are all blocked must
  come out finite. Scale the scores before the fill: a scale of 0 or above 1 applied after it
  unblocks keys or turns the fill into -inf.
- Softmax over the key axis (the last one): each query distributes its attention over the keys.
- float16 in, float16 out: run the softmax in float32 and cast back, but return the input dtype.

This file is self-contained: it may not import the other exercises. A library softmax
(torch.softmax) is allowed here. Forbidden: torch.nn.functional.scaled_dot_product_attention and
every other fused attention route.

Forbidden in this file: NumPy (import torch and the standard library only): work done in NumPy
is hidden from the grader's checks, so a file that uses it scores 0, and the report says so.
"""
import math

import torch


def scaled_dot_product_attention(q, k, v, mask=None, scale=None):
    """Scaled dot-product attention with an optional boolean mask.

    Args:
        q: (..., L, d_k) queries.
        k: (..., S, d_k) keys.
        v: (..., S, d_v) values (d_v may differ from d_k).
        mask: bool broadcastable to (..., L, S), True = blocked; or None.
        scale: number or None (None: 1 / sqrt(d_k); any number, 0.0 included, is used as given).

    Returns:
        (out, probs): out (..., L, d_v) and probs (..., L, S), both in q's dtype. Rows whose keys
        are all blocked are finite.

    Forbidden: torch.nn.functional.scaled_dot_product_attention, nn.MultiheadAttention and any
    other fused attention kernel.

    Steps (q (B, H, L, d_k), k (B, H, S, d_k), v (B, H, S, d_v); any leading axes work the same):
        scale   number          1 / sqrt(d_k) when scale is None (`math.sqrt` of q's last size)
        scores  (B, H, L, S)    every query against every key: a matrix product with k's last two
                                axes swapped (`transpose`, not `.T`), times scale
        scores  (B, H, L, S)    where the mask is True: the dtype's most negative finite value
                                (`masked_fill`, `torch.finfo(dtype).min`); skip when mask is None
        probs   (B, H, L, S)    softmax over the key axis, the last (`torch.softmax` is allowed here),
                                computed in float32 for float16/bfloat16 scores, then back to q's dtype
        out     (B, H, L, d_v)  the probabilities weighting the values (a matrix product with v)
        return (out, probs)
    """
    raise NotImplementedError("TODO: scores, scale, mask, softmax over keys, @ v; return (out, probs)")
