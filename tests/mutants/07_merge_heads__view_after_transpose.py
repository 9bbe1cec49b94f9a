# uncatalogued: .view on the non-contiguous transposed tensor raises
"""Step 7: merge the heads back into one feature axis (reference), the inverse of split_heads."""
import torch


def merge_heads(x):
    """(B, H, L, d_head) -> (B, L, H * d_head); head h fills features [h * d_head, (h + 1) * d_head)."""
    B, H, L, d_head = x.shape
    # Heads must sit next to d_head before flattening, else features of different tokens mix.
    x = x.transpose(1, 2)                      # (B, L, H, d_head)
    return x.view(B, L, H * d_head)         # (B, L, H * d_head); reshape copies: not contiguous
