"""Step 6 as a broadcast product summed over the key axis, accumulated in float64."""
import torch


def weight_values(probs, v):
    terms = probs.to(torch.float64).unsqueeze(-1) * v.to(torch.float64).unsqueeze(-3)   # (..., L, S, d_v)
    return terms.sum(dim=-2).to(probs.dtype)
