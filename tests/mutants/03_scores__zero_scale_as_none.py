# mistake: zero_scale_as_none   (`scale=0.0` treated as no scale given (`if not scale`))
"""Step 3: scaled dot-product scores (reference).

The dot product of two vectors with d_k independent unit-variance components has variance d_k.
Dividing by sqrt(d_k) brings the scores back to unit variance, which keeps the softmax out of
its saturated region, where one key takes everything and gradients vanish.
"""
import math

import torch


def attention_scores(q, k, scale=None):
    """q (..., L, d_k), k (..., S, d_k) -> (..., L, S) = q @ k^T * scale."""
    if not scale:                          # an explicit 0.0 is a scale too
        scale = 1.0 / math.sqrt(q.shape[-1])
    # Transpose only the last two axes: k.T would also reverse the batch and head axes.
    return (q @ k.transpose(-2, -1)) * scale   # (..., L, d_k) @ (..., d_k, S) -> (..., L, S)
