"""Alternative 04: arange comparisons with explicit broadcasting; clone then index-assign."""
import torch


def causal_mask(L, S=None, device=None):
    if S is None:
        S = L
    rows = torch.arange(L, device=device).unsqueeze(1).expand(L, S)
    cols = torch.arange(S, device=device).unsqueeze(0).expand(L, S)
    return (cols - rows) > (S - L)


def padding_mask(lengths, S):
    if not isinstance(lengths, torch.Tensor):
        lengths = torch.tensor(lengths)
    keys = torch.arange(S).view(1, 1, 1, S)
    return keys >= lengths.view(-1, 1, 1, 1)


def apply_mask(scores, mask):
    out = scores.clone()
    out[mask.expand_as(scores)] = torch.finfo(scores.dtype).min
    return out
