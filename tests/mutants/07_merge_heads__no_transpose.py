# mistake: no_transpose_back   (reshape without transposing back first)
"""Step 7: merge the heads back into one feature axis (reference), the inverse of split_heads."""
import torch


def merge_heads(x):
    """(B, H, L, d_head) -> (B, L, H * d_head); head h fills features [h * d_head, (h + 1) * d_head)."""
    B, H, L, d_head = x.shape
    # Heads must sit next to d_head before flattening, else features of different tokens mix.
    return x.reshape(B, L, H * d_head)         # (B, L, H * d_head); reshape copies: not contiguous
