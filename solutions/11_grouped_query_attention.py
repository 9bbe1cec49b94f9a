"""Grouped-query and multi-query attention (reference).

At long context and large batch the KV cache, not the weights, dominates decoding's memory
traffic. GQA lets several query heads share one key/value head: H_q query heads read H_kv <= H_q
kv heads, so the cache shrinks by H_q / H_kv. H_kv = 1 is multi-query attention; H_kv = H_q is ordinary multi-head attention.
"""
import math

import torch


def repeat_kv(x, n_rep):
    """(B, H_kv, S, d) -> (B, H_kv * n_rep, S, d); output head h is input head h // n_rep."""
    if n_rep == 1:
        return x
    B, H_kv, S, d = x.shape
    # A new axis right after the head axis, so the n_rep copies of one kv head sit side by side
    # (repeat_interleave order, not tile order). expand is free; reshape copies once.
    return x[:, :, None].expand(B, H_kv, n_rep, S, d).reshape(B, H_kv * n_rep, S, d)


def grouped_query_attention(q, k, v, mask=None, scale=None):
    """q (B, H_q, L, d_k), k (B, H_kv, S, d_k), v (B, H_kv, S, d_v) -> (B, H_q, L, d_v).

    mask: bool, broadcastable to (B, H_q, L, S), True = blocked.
    """
    H_q, H_kv = q.shape[1], k.shape[1]
    if H_kv == 0 or H_q % H_kv != 0:
        raise ValueError(f"query heads ({H_q}) must be a multiple of key/value heads ({H_kv})")
    if v.shape[1] != H_kv:
        raise ValueError(f"k has {H_kv} heads but v has {v.shape[1]}")
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])

    n_rep = H_q // H_kv
    k = repeat_kv(k, n_rep)                                # (B, H_q, S, d_k)
    v = repeat_kv(v, n_rep)                                # (B, H_q, S, d_v)

    scores = (q @ k.transpose(-2, -1)) * scale             # (B, H_q, L, S)
    if mask is not None:
        # Finite fill: a fully blocked row stays finite instead of turning NaN.
        scores = scores.masked_fill(mask, torch.finfo(scores.dtype).min)
    # Half precision loses too much in exp and the row sum: normalise in float32.
    wide = torch.float32 if scores.dtype in (torch.float16, torch.bfloat16) else scores.dtype
    probs = scores.to(wide).softmax(dim=-1).to(v.dtype)    # (B, H_q, L, S)
    return probs @ v                                       # (B, H_q, L, d_v)


def kv_cache_bytes(batch, seq_len, num_layers, num_kv_heads, head_dim, dtype):
    """Bytes a KV cache holds: keys and values (the 2), per layer, per kv head, per token."""
    element_size = torch.empty((), dtype=dtype).element_size()
    return int(2 * batch * seq_len * num_layers * num_kv_heads * head_dim * element_size)
