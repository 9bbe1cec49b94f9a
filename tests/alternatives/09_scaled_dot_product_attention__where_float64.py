"""Steps 3-6 in float64 inside, torch.where for the mask, a hand-written stable softmax."""
import math

import torch


def scaled_dot_product_attention(q, k, v, mask=None, scale=None):
    s = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    q64, k64, v64 = q.double(), k.double(), v.double()
    scores = torch.matmul(q64 * s, k64.transpose(-1, -2))
    if mask is not None:
        scores = torch.where(mask, torch.tensor(torch.finfo(torch.float64).min, dtype=torch.float64), scores)
    scores = scores - scores.amax(dim=-1, keepdim=True)
    e = scores.exp()
    probs = e / e.sum(dim=-1, keepdim=True)
    out = probs @ v64
    return out.to(q.dtype), probs.to(q.dtype)
