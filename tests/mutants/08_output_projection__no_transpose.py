# mistake: weight_not_transposed   (`x @ W` instead of `x @ Wᵀ` (weights are stored (out, in)))
"""Step 8: the output projection (reference).

After merging, each head's output still sits in its own block of features. A final linear layer
mixes the heads' information together.
"""
import torch


def output_projection(x, w_o, b_o=None):
    """x (B, L, H * d_head), w_o (d_out, H * d_head), b_o (d_out,) or None -> (B, L, d_out)."""
    out = x @ w_o             # (B, L, H * d_head) @ (H * d_head, d_out) -> (B, L, d_out)
    if b_o is not None:
        out = out + b_o
    return out
