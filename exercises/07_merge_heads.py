"""Checklist step 7: Merge heads.

The inverse of split_heads: the H head outputs (B, H, L, d_head) become one feature axis again,
head h filling features [h * d_head, (h + 1) * d_head). Move the head axis back next to d_head
first, then flatten: reshaping (B, H, L, d_head) straight to (B, L, H * d_head) mixes different
tokens into one row. After the transpose the tensor is not contiguous, so use reshape (or
.contiguous().view).

Forbidden in this file: NumPy (import torch and the standard library only): work done in NumPy
is hidden from the grader's checks, so a file that uses it scores 0, and the report says so.
"""
import torch


def merge_heads(x):
    """Merge the heads back into the feature axis.

    Args:
        x: (B, H, L, d_head).

    Returns:
        (B, L, H * d_head), with merge_heads(split_heads(y, H)) == y.

    Steps (x (B, H, L, d_head)):
        x       (B, L, H, d_head)       the head axis moved back next to d_head (`transpose` of axes
                                        1 and 2)
        x       (B, L, H * d_head)      the last two axes flattened into one, head h filling features
                                        [h * d_head, (h + 1) * d_head) (`reshape`: after the transpose
                                        the tensor is not contiguous, so a bare `view` fails)
        return x
    """
    raise NotImplementedError("TODO: undo split_heads: heads back next to d_head, then flatten")
