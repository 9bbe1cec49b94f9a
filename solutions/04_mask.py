"""Step 4: masks, applied to the scores before the softmax (reference).

A mask is bool, True = blocked (as in nn.MultiheadAttention; SDPA's bool True means attend: see
exercises/conventions.md). Blocked scores get the dtype's most negative finite value: exp of it is
0 after the softmax, so the remaining weights still sum to 1, where zeroing probabilities after it
would not. A finite fill keeps a fully blocked row finite: an all -inf row is NaN in every dtype.
"""
import torch


def causal_mask(L, S=None, device=None):
    """bool (L, S), True where key j > i + (S - L): each query sees only keys up to its position.

    Aligned bottom-right: with S > L the L queries are the last L positions (decoding with a
    cache), so the last query sees every key.
    """
    if S is None:
        S = L
    i = torch.arange(L, device=device)[:, None]     # (L, 1) query positions
    j = torch.arange(S, device=device)[None, :]     # (1, S) key positions
    return j > i + (S - L)                          # (L, S)


def padding_mask(lengths, S):
    """lengths: list or 1-D integer tensor of B lengths -> bool (B, 1, 1, S), True where j >= lengths[b]."""
    lengths = torch.as_tensor(lengths)                       # (B,)
    j = torch.arange(S, device=lengths.device)               # (S,)
    mask = j[None, :] >= lengths[:, None]                    # (B, S): padded keys
    # Singleton head and query axes: padding hides keys from every head and every query.
    return mask[:, None, None, :]                            # (B, 1, 1, S)


def apply_mask(scores, mask):
    """A new tensor of scores' shape: scores where mask is False, finfo(dtype).min where True."""
    # masked_fill (not masked_fill_) returns a copy and leaves the caller's scores untouched.
    return scores.masked_fill(mask, torch.finfo(scores.dtype).min)
