"""Checklist step 8: Output projection.

After merging, each head's result still sits in its own block of features; nothing has combined
what different heads found. A final linear layer W_o mixes all heads' features into each output
feature. Weights are in nn.Linear layout (d_out, d_in), so multiply by W_o transposed.

Forbidden in this file: torch.nn.functional.linear and torch.nn.Linear - write the matmul.

Forbidden in this file: NumPy (import torch and the standard library only): work done in NumPy
is hidden from the grader's checks, so a file that uses it scores 0, and the report says so.
"""
import torch


def output_projection(x, w_o, b_o=None):
    """Apply the output projection.

    Args:
        x: (B, L, H * d_head) merged heads.
        w_o: (d_out, H * d_head), nn.Linear layout.
        b_o: (d_out,) or None.

    Returns:
        (B, L, d_out) = x @ w_o.T + b_o.

    Forbidden: torch.nn.functional.linear, torch.nn.Linear.

    Steps (x (B, L, H * d_head), w_o (d_out, H * d_head), b_o (d_out,) or None):
        out     (B, L, d_out)   x against every row of w_o: a matrix product with w_o transposed
                                (nn.Linear layout is (out, in), so not w_o itself)
        out     (B, L, d_out)   plus b_o, broadcast over B and L; skip when b_o is None
        return out
    """
    raise NotImplementedError("TODO: project with w_o (stored (out, in)), plus b_o when one is given")
