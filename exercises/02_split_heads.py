"""Checklist step 2: Split heads.

Multi-head attention runs H small attentions side by side, each on its own d_head = D // H
slice of the features, so that different heads can attend to different things. Head h holds the
contiguous block of features [h * d_head, (h + 1) * d_head) - the layout nn.MultiheadAttention
uses - not every H-th feature.

Two moves: split the feature axis D into (H, d_head), then move the head axis in front of the
length axis, so that (B, H) act as batch dimensions and one matmul serves every head. A bare
view(B, H, L, d_head) without the transpose mixes features of different tokens into one head.

Forbidden in this file: NumPy (import torch and the standard library only): work done in NumPy
is hidden from the grader's checks, so a file that uses it scores 0, and the report says so.
"""
import torch


def split_heads(x, num_heads):
    """Split the feature axis into heads and move heads before length.

    Args:
        x: (B, L, D).
        num_heads: H, a positive int dividing D.

    Returns:
        (B, H, L, D // H); head h holds features [h * d_head, (h + 1) * d_head). A view of x is fine.

    Raises:
        ValueError: if D % H != 0 (say which D and H).

    Steps (x (B, L, D), H = num_heads):
        check                           D must divide evenly by H, else ValueError naming D and H
        d_head  int                     the size of one head's block of features
        x       (B, L, H, d_head)       the last axis split into H contiguous blocks of d_head
                                        (`reshape` or `view` with the four sizes)
        x       (B, H, L, d_head)       the length and head axes swapped (`transpose` of axes 1 and 2),
                                        so (B, H) act as batch axes; a view of x is fine
        return x
    """
    raise NotImplementedError("TODO: check D % H, then give each head its own block of features")
