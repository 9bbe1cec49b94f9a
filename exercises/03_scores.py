"""Checklist step 3: Scores - Q @ K^T / sqrt(d_k).

Score[i, j] says how well query i matches key j: their dot product. Why divide by sqrt(d_k)? If
q and k have d_k independent components of variance 1, their dot product has variance d_k. With
d_k = 64 the scores spread over about +-8 and more; the softmax then saturates (one key takes
almost all the weight) and its gradients vanish. Multiplying by 1/sqrt(d_k) brings the variance
back to 1. d_k is the per-head key size (q.shape[-1]), not d_model and not d_v.

Transpose only the last two axes of k: k.T on a 4-D tensor also reverses batch and head axes.

Forbidden in this file: NumPy (import torch and the standard library only): work done in NumPy
is hidden from the grader's checks, so a file that uses it scores 0, and the report says so.
"""
import math

import torch


def attention_scores(q, k, scale=None):
    """Scaled dot-product scores of every query against every key.

    Args:
        q: (..., L, d_k) queries.
        k: (..., S, d_k) keys. Leading dimensions broadcast as in torch.matmul.
        scale: number or None. None means 1 / sqrt(d_k); any number given, 0.0 included, is
            used as it is (test `scale is None`, not `not scale`).

    Returns:
        (..., L, S) = q @ k^T * scale, in q's dtype.

    Steps (q (..., L, d_k), k (..., S, d_k)):
        scale   number          when scale is None: 1 / sqrt(d_k) (`math.sqrt`), d_k being q's last
                                size; a scale given, even 0.0, is kept
        kt      (..., d_k, S)   k with only its last two axes swapped (`transpose` with negative axes,
                                not `.T`)
        scores  (..., L, S)     every query dotted with every key: a batched matrix product (`@` or
                                `torch.matmul`), leading axes broadcasting
        scores  (..., L, S)     times scale
        return scores
    """
    raise NotImplementedError("TODO: every query against every key, scaled (default 1/sqrt(d_k))")
