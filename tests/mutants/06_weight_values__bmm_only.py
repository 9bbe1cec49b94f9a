# uncatalogued: torch.bmm, which works only for 3-D inputs
"""Step 6: weight the values by the attention probabilities (reference).

Each output row is a convex combination of the value rows, mixed by that query's probabilities.
"""
import torch


def weight_values(probs, v):
    """probs (..., L, S), v (..., S, d_v) -> (..., L, d_v)."""
    return torch.bmm(probs, v)          # (..., L, S) @ (..., S, d_v) -> (..., L, d_v)
