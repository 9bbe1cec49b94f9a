"""Step 6 with einsum: out[..., l, d] = sum_s probs[..., l, s] * v[..., s, d]."""
import torch


def weight_values(probs, v):
    return torch.einsum("...ls,...sd->...ld", probs, v)
