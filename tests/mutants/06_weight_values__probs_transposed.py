# mistake: probs_transposed   (the probabilities are transposed (the sum runs over the queries, not the keys))
"""Step 6: weight the values by the attention probabilities (reference).

Each output row is a convex combination of the value rows, mixed by that query's probabilities.
"""
import torch


def weight_values(probs, v):
    """probs (..., L, S), v (..., S, d_v) -> (..., L, d_v)."""
    return probs.transpose(-2, -1) @ v          # (..., L, S) @ (..., S, d_v) -> (..., L, d_v)
