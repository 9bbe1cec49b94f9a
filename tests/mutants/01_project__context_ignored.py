# mistake: context_ignored   (the cross-attention context is ignored (keys and values computed from x))
"""Step 1: project the tokens into queries, keys and values (reference).

Each of Q, K and V has its own weight matrix. Weights are stored (d_out, d_in), as in nn.Linear,
so the projection multiplies by the transpose.
"""
import torch


def linear(x, weight, bias=None):
    """x (..., d_in), weight (d_out, d_in), bias (d_out,) or None -> (..., d_out)."""
    out = x @ weight.T            # (..., d_in) @ (d_in, d_out) -> (..., d_out)
    if bias is not None:
        out = out + bias          # broadcasts over the leading dimensions
    return out


def project_qkv(x, w_q, w_k, w_v, b_q=None, b_k=None, b_v=None, context=None):
    """x (B, L, D) -> q (B, L, D); k, v (B, S, D) from context when given, else from x (S = L)."""
    # Cross-attention: queries come from the sequence being built, keys and values from the
    # sequence being read (an encoder's output, say).
    source = x
    q = linear(x, w_q, b_q)             # (B, L, D)
    k = linear(source, w_k, b_k)        # (B, S, D)
    v = linear(source, w_v, b_v)        # (B, S, D)
    return q, k, v
