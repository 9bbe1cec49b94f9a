"""Checklist step 6: Weight the values.

Each query's output is a weighted average of the value vectors, weighted by that query's
attention probabilities over the keys: out[i] = sum_j probs[i, j] * v[j]. The output mixes the
values (V), not the keys: keys only decide the weights.

Forbidden in this file: NumPy (import torch and the standard library only): work done in NumPy
is hidden from the grader's checks, so a file that uses it scores 0, and the report says so.
"""
import torch


def weight_values(probs, v):
    """Mix the values by the attention probabilities.

    Args:
        probs: (..., L, S), each row sums to 1 over the keys.
        v: (..., S, d_v) values, one per key. Leading dimensions broadcast as in torch.matmul.

    Returns:
        (..., L, d_v).

    Steps (probs (..., L, S), v (..., S, d_v)):
        out     (..., L, d_v)   for each query, the sum over keys of its probability times that key's
                                value row: one batched matrix product contracting the key axis S
                                (`@` or `torch.matmul`; the leading axes broadcast)
        return out
    """
    raise NotImplementedError("TODO: mix the values with the attention probabilities")
