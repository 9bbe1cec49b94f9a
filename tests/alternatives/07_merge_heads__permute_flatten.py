"""Step 7 with permute and flatten."""
import torch


def merge_heads(x):
    return x.permute(0, 2, 1, 3).contiguous().flatten(start_dim=2)
