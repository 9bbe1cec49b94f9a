"""Alternative 02: one slice per head, stacked on a new head axis (a copy, contiguous)."""
import torch


def split_heads(x, num_heads):
    B, L, D = x.shape
    if D % num_heads != 0:
        raise ValueError("d_model must be divisible by num_heads")
    heads = torch.split(x, D // num_heads, dim=-1)     # H tensors (B, L, d_head)
    return torch.stack(heads, dim=1).contiguous()
