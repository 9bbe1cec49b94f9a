# uncatalogued: the weighted sum divided by the number of keys (a mean)
"""Step 6: weight the values by the attention probabilities (reference).

Each output row is a convex combination of the value rows, mixed by that query's probabilities.
"""
import torch


def weight_values(probs, v):
    """probs (..., L, S), v (..., S, d_v) -> (..., L, d_v)."""
    return probs @ v / v.shape[-2]   # mean over keys, not the weighted sum; (..., L, S) @ (..., S, d_v) -> (..., L, d_v)
