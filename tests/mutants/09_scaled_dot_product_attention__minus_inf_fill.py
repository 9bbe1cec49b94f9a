# mistake: nan_on_masked_row   (a fully masked row turns NaN)
"""Steps 3 to 6 together: scaled dot-product attention (reference).

softmax(q @ k^T * scale, masked) @ v. The mask goes on the scores before the softmax, filled
with a finite minimum so that a query whose keys are all blocked stays finite.
"""
import math

import torch


def scaled_dot_product_attention(q, k, v, mask=None, scale=None):
    """q (..., L, d_k), k (..., S, d_k), v (..., S, d_v) -> out (..., L, d_v), probs (..., L, S).

    mask: bool, broadcastable to (..., L, S), True = blocked.
    """
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    scores = (q @ k.transpose(-2, -1)) * scale                 # (..., L, S)
    if mask is not None:
        scores = scores.masked_fill(mask, float('-inf'))
    # Half precision loses too much in exp and the row sum: normalise in float32, cast back.
    wide = torch.float32 if scores.dtype in (torch.float16, torch.bfloat16) else scores.dtype
    probs = torch.softmax(scores.to(wide), dim=-1).to(q.dtype) # (..., L, S), over the key axis
    out = probs @ v                                            # (..., L, S) @ (..., S, d_v) -> (..., L, d_v)
    return out, probs
