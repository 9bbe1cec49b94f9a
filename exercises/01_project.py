"""Checklist step 1: Project - linear layers for Q, K, V.

Attention never compares the raw token vectors. Each token is mapped three ways, each by its own
learned matrix: a query (what this token is looking for), a key (what it can be found by) and a
value (what it passes on once found). Sharing one matrix between them would make every query
equal its key, so each of Q, K and V has its own weight and bias.

Weights are stored as in nn.Linear: shape (d_out, d_in), one row per output feature. A
projection is therefore x @ weight.T + bias, not x @ weight.

In cross-attention (a decoder reading an encoder) the queries come from x, while the keys and
values come from another sequence, the context.

Forbidden in this file: torch.nn.functional.linear and torch.nn.Linear - write the matmul.

Forbidden in this file: NumPy (import torch and the standard library only): work done in NumPy
is hidden from the grader's checks, so a file that uses it scores 0, and the report says so.
"""
import torch


def linear(x, weight, bias=None):
    """Apply an affine map to the last axis of x, as nn.Linear does.

    Args:
        x: (..., d_in), any number of leading dimensions.
        weight: (d_out, d_in), the nn.Linear layout.
        bias: (d_out,) or None.

    Returns:
        (..., d_out) = x @ weight.T + bias, in x's dtype and on x's device.

    Forbidden: torch.nn.functional.linear, torch.nn.Linear. Do not modify x in place.

    Steps (x (..., d_in), weight (d_out, d_in), bias (d_out,) or None):
        out     (..., d_out)    x against every row of weight: a matrix product with the weight
                                transposed (`@`; on a 2-D tensor `.T` swaps its two axes), so each
                                output feature is the dot product of x's last axis with one row
        out     (..., d_out)    plus bias, which broadcasts over the leading axes; skip when bias is None
        return out
    """
    raise NotImplementedError("TODO: project x with weight (stored (out, in)), plus bias when one is given")


def project_qkv(x, w_q, w_k, w_v, b_q=None, b_k=None, b_v=None, context=None):
    """Project tokens into queries, keys and values, each with its own weight.

    Args:
        x: (B, L, D) the sequence that asks (queries come from it).
        w_q, w_k, w_v: (D, D) each, nn.Linear layout (out, in).
        b_q, b_k, b_v: (D,) each, or None.
        context: (B, S, D) or None. When given (cross-attention), keys and values come from it;
            otherwise they come from x (self-attention, S = L).

    Returns:
        (q, k, v): q (B, L, D), k (B, S, D), v (B, S, D).

    Forbidden: torch.nn.functional.linear, torch.nn.Linear (use your linear above).

    Steps (x (B, L, D), context (B, S, D) or None):
        source  (B, S, D)       where keys and values come from: context when given, else x (then S = L)
        q       (B, L, D)       x through your own `linear` with the query weight and bias
        k       (B, S, D)       source through `linear` with the key weight and bias
        v       (B, S, D)       source through `linear` with the value weight and bias
        return (q, k, v)
    """
    raise NotImplementedError("TODO: project x (or context, for k and v) with w_q, w_k, w_v")
