"""Steps 3-6 with einsum; a query that sees no key gets all-zero weights (finite, not uniform)."""
import math

import torch


def scaled_dot_product_attention(q, k, v, mask=None, scale=None):
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    wide = torch.float32 if q.dtype in (torch.float16, torch.bfloat16) else q.dtype
    scores = torch.einsum("...ld,...sd->...ls", q.to(wide), k.to(wide)) * scale
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    m = scores.amax(dim=-1, keepdim=True)
    m = torch.where(torch.isinf(m), torch.zeros_like(m), m)
    e = torch.exp(scores - m)
    total = e.sum(dim=-1, keepdim=True)
    probs = e / torch.where(total == 0, torch.ones_like(total), total)
    out = torch.einsum("...ls,...sd->...ld", probs, v.to(wide))
    return out.to(q.dtype), probs.to(q.dtype)
