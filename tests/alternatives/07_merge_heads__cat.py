"""Step 7 by concatenating the heads along the feature axis."""
import torch


def merge_heads(x):
    return torch.cat(torch.unbind(x, dim=1), dim=-1)
