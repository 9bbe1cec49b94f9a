"""Scores with baddbmm over flattened leading dimensions, torch.softmax (allowed here), the mask
filled with the dtype's most negative finite value, nan_to_num as a guard."""
import math

import torch


def broadcast(*shapes):
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    return tuple(max(sizes) for sizes in zip(*padded))


def scaled_dot_product_attention(q, k, v, mask=None, scale=None):
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    lead = broadcast(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    L, S = q.shape[-2], k.shape[-2]
    qf = q.expand(*lead, L, q.shape[-1]).reshape(-1, L, q.shape[-1])
    kf = k.expand(*lead, S, k.shape[-1]).reshape(-1, S, k.shape[-1])
    zero = torch.zeros(qf.shape[0], L, S, dtype=q.dtype, device=q.device)
    scores = torch.baddbmm(zero, qf, kf.transpose(1, 2), beta=0.0, alpha=scale).reshape(*lead, L, S)
    if mask is not None:
        scores = scores.masked_fill(mask, torch.finfo(scores.dtype).min)
    work = scores.float() if scores.dtype in (torch.float16, torch.bfloat16) else scores
    probs = torch.nan_to_num(torch.softmax(work, dim=-1)).to(q.dtype)
    return probs @ v, probs
