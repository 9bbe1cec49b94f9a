# mistake: heads_interleaved   (heads interleaved (feature f sent to head f % H))
"""Step 2: split the feature axis into heads (reference).

Head h owns the contiguous block of features [h * d_head, (h + 1) * d_head), the layout
nn.MultiheadAttention uses. Heads then move in front of the length axis so that every head
attends independently as one batched matmul.
"""
import torch


def split_heads(x, num_heads):
    """(B, L, D) -> (B, H, L, D // H). ValueError if D is not divisible by H."""
    B, L, D = x.shape
    if num_heads <= 0 or D % num_heads != 0:
        raise ValueError(f"d_model D={D} must be divisible by num_heads H={num_heads}")
    d_head = D // num_heads
    return x.reshape(B, L, d_head, num_heads).permute(0, 3, 1, 2)                   # heads before length: (B, H, L, d_head)
