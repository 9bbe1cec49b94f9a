"""Alternative 02: unflatten the feature axis, then permute."""
import torch


def split_heads(x, num_heads):
    D = x.shape[-1]
    if D % num_heads:
        raise ValueError(f"{D} features cannot be split into {num_heads} heads")
    return x.unflatten(-1, (num_heads, D // num_heads)).permute(0, 2, 1, 3)
