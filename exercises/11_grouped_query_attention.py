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

Forbidden in this file: NumPy (import torch and the standard library only): work done in NumPy
is hidden from the grader's checks, so a file that uses it scores 0, and the report says so.
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

    Steps (x (B, H_kv, S, d)):
        x       (B, H_kv, 1, S, d)      a new axis right after the head axis (`None` indexing)
        x       (B, H_kv, n_rep, S, d)  that axis stretched to n_rep (`expand`): no copy yet, the
                                        n_rep copies read the same memory
        x       (B, H_kv * n_rep, S, d) the head and copy axes merged into one (`reshape`, which copies
                                        once), so the n_rep copies of one kv head sit side by side
        return x   (with n_rep == 1, x itself)

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

    Steps (q (B, H_q, L, d_k), k (B, H_kv, S, d_k), v (B, H_kv, S, d_v)):
        check                       H_q must be a multiple of H_kv, else ValueError saying so
        n_rep   int                 query heads per kv head
        k       (B, H_q, S, d_k)    each kv head repeated for its group of query heads (your
                                    `repeat_kv`)
        v       (B, H_q, S, d_v)    the same
        scores  (B, H_q, L, S)      every query against every key (k's last two axes swapped), times
                                    scale (1 / sqrt(d_k) when None)
        scores  (B, H_q, L, S)      blocked entries set to `torch.finfo(dtype).min` (`masked_fill`);
                                    only when a mask is given
        probs   (B, H_q, L, S)      softmax over the key axis, in float32 for float16/bfloat16, cast
                                    back
        out     (B, H_q, L, d_v)    the probabilities weighting the values
        return out

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
        element_size    int     bytes per element of dtype: 2 for float16 (`element_size()` of an empty
                                tensor of that dtype, or `dtype.itemsize`)
        per_token       int     elements one token adds to the cache: a key and a value (the factor 2),
                                in every layer, for every kv head, head_dim features each
        return          int     batch times seq_len tokens, times per_token, times element_size
    """
    raise NotImplementedError("TODO: count keys and values for every layer, head and token")
