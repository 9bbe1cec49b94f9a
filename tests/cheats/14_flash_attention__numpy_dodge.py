# attack: build the full (L, S) score matrix in NumPy, where the watch that proves tiling cannot count it
# layer: static scan (no numpy in PyTorch exercises) + the watch (a tensor handed to NumPy is named)
# expect: numpy
# runtime: numpy
import math

import numpy as np
import torch


def flash_attention(q, k, v, causal=False, scale=None, block_size=64):
    s = (1.0 / math.sqrt(q.shape[-1])) if scale is None else scale
    qn, kn, vn = (t.detach().cpu().double().numpy() for t in (q, k, v))
    scores = np.einsum("bhld,bhsd->bhls", qn, kn) * s
    L, S = scores.shape[-2:]
    if causal:
        scores = np.where(np.arange(S)[None, :] > np.arange(L)[:, None] + (S - L), -np.inf, scores)
    m = scores.max(-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(scores - m)
    lse = np.log(e.sum(-1)) + m[..., 0]
    out = np.einsum("bhls,bhsd->bhld", e / np.maximum(e.sum(-1, keepdims=True), 1e-300), vn)
    return torch.from_numpy(out).to(q.dtype), torch.from_numpy(lse).float()
