"""Exercise 11 (follow-up): grouped-query and multi-query attention.

The interview question: "how do you shrink the KV cache at inference time?"

When a model decodes token by token, every step reads the keys and values of all earlier tokens
from the KV cache, so the cache's size sets the memory and bandwidth bill. Grouped-query
attention (GQA) keeps H_q query heads but only H_kv key/value heads, each shared by a group of
n_rep = H_q // H_kv consecutive query heads. The cache shrinks by that factor n_rep.

    H_kv == H_q      ordinary multi-head attention (n_rep = 1)
    1 < H_kv < H_q   grouped-query attention (Llama 2 70B, Llama 3, Mistral)
    H_kv == 1        multi-query attention: every query head shares one key/value head

Query head h reads kv head h // n_rep: with H_q = 8 and H_kv = 2, heads 0-3 share kv head 0 and
heads 4-7 share kv head 1 (this is `repeat_interleave` order, not `repeat`/tile order).

Rules: `torch.nn.functional.scaled_dot_product_attention`, `nn.MultiheadAttention` and every
other fused attention kernel are forbidden. A library softmax is allowed here.
"""
import math

import torch


def repeat_kv(x, n_rep):
    """Repeat each key/value head n_rep times, so the kv heads line up with the query heads.

    Args:
        x: (B, H_kv, S, d) keys or values.
        n_rep: how many query heads share each kv head (H_q // H_kv), an int >= 1.

    Returns:
        (B, H_kv * n_rep, S, d), where output head h is a copy of input head h // n_rep
        (the same as `x.repeat_interleave(n_rep, dim=1)`). With n_rep == 1, x itself is fine.
        Same dtype and device as x; x is not modified.

    Steps:
        B, H_kv, S, d = x.shape
        x = x[:, :, None]                                # (B, H_kv, 1, S, d)   new axis after heads
        x = x.expand(B, H_kv, n_rep, S, d)               # (B, H_kv, n_rep, S, d) no copy yet
        x = x.reshape(B, H_kv * n_rep, S, d)             # (B, H_q, S, d)   copies of a head side by side

    The new axis goes *after* the head axis: putting it before (or using `x.repeat`) tiles the
    heads, 0 1 0 1 ..., and query head 1 would read kv head 1 instead of kv head 0.
    """
    raise NotImplementedError("TODO: repeat each kv head n_rep times, side by side")


def grouped_query_attention(q, k, v, mask=None, scale=None):
    """Scaled dot-product attention where groups of query heads share key/value heads.

    Args:
        q: (B, H_q, L, d_k) queries.
        k: (B, H_kv, S, d_k) keys.
        v: (B, H_kv, S, d_v) values.
        mask: optional bool tensor broadcastable to (B, H_q, L, S); True means blocked (that key
            is not attended to). Blocked scores are filled with `torch.finfo(dtype).min`, which
            is finite, so a query whose keys are all blocked comes out finite, not NaN.
        scale: multiplies the scores; None means 1 / sqrt(d_k). Any number, 0.0 included, is used
            as given.

    Returns:
        (B, H_q, L, d_v), in q's dtype and on q's device. Inputs are not modified.

    Raises:
        ValueError: if H_q is not a multiple of H_kv (say so in the message).

    Steps:
        if H_q % H_kv != 0: raise ValueError(...)
        n_rep = H_q // H_kv
        k = repeat_kv(k, n_rep)                          # (B, H_kv, S, d_k) -> (B, H_q, S, d_k)
        v = repeat_kv(v, n_rep)                          # (B, H_kv, S, d_v) -> (B, H_q, S, d_v)
        scores = q @ k.transpose(-2, -1) * scale         # (B, H_q, L, d_k) @ (B, H_q, d_k, S)
                                                         #   -> (B, H_q, L, S)
        scores = scores.masked_fill(mask, finfo.min)     # (B, H_q, L, S)   only if a mask is given
        probs = softmax(scores, dim=-1)                  # (B, H_q, L, S)   over keys; in float32
                                                         #   for fp16/bf16, then cast back
        out = probs @ v                                  # (B, H_q, L, S) @ (B, H_q, S, d_v)
                                                         #   -> (B, H_q, L, d_v)

    Forbidden: any fused attention kernel (`F.scaled_dot_product_attention` and friends).
    """
    raise NotImplementedError("TODO: expand k and v to H_q heads, then attend")


def kv_cache_bytes(batch, seq_len, num_layers, num_kv_heads, head_dim, dtype):
    """How many bytes a KV cache of this size occupies.

    Args:
        batch, seq_len, num_layers, num_kv_heads, head_dim: ints.
        dtype: a `torch.dtype` (e.g. torch.float16), the cache's element type.

    Returns:
        An int: the bytes for keys *and* values, across all layers. For example Llama-3-8B-like
        settings (32 layers, 8 kv heads, head_dim 128, fp16) at batch 1, 8192 tokens give
        1 073 741 824 bytes (1 GiB); with 32 kv heads (no GQA) it would be 4 GiB.

    Steps:
        element_size = torch.empty((), dtype=dtype).element_size()   # bytes per element: 2 for fp16
        per_token = 2 * num_layers * num_kv_heads * head_dim         # the 2: one key and one value
        return batch * seq_len * per_token * element_size            # an int
    """
    raise NotImplementedError("TODO: count keys and values for every layer, head and token")
