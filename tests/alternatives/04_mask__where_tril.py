"""Alternative 04: torch.tril of the visible keys, a loop for padding, torch.where for the fill."""
import torch


def causal_mask(L, S=None, device=None):
    S = L if S is None else S
    visible = torch.ones(L, S, dtype=torch.bool, device=device).tril(diagonal=S - L)
    return ~visible


def padding_mask(lengths, S):
    lengths = [int(n) for n in lengths]
    mask = torch.zeros(len(lengths), 1, 1, S, dtype=torch.bool)
    for b, n in enumerate(lengths):
        mask[b, 0, 0, n:] = True
    return mask


def apply_mask(scores, mask):
    fill = torch.tensor(torch.finfo(scores.dtype).min, dtype=scores.dtype, device=scores.device)
    return torch.where(mask, fill, scores)
