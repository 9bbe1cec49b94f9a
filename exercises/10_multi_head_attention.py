"""All eight checklist steps: the multi-head attention module.

    1. project  2. split heads  3. scores / sqrt(head_dim)  4. mask  5. softmax over keys
    6. weight the values  7. merge heads  8. output projection

__init__ is given: it creates q_proj, k_proj, v_proj and out_proj (each nn.Linear(d_model,
d_model)); use them in forward (nn.Linear is allowed here). Write forward.

Your module must match nn.MultiheadAttention(d_model, num_heads, batch_first=True) in eval mode
given the same weights, with per-head weights (average_attn_weights=False), on every query that
sees at least one key. Where nn.MultiheadAttention gives NaN (a query that sees no key) yours must be finite:
fill blocked scores with torch.finfo(dtype).min, not -inf.

Masks are bool and True means blocked, as in nn.MultiheadAttention
(F.scaled_dot_product_attention's bool mask means the opposite). key_padding_mask hides keys (the
last axis of the scores), never queries. Several masks combine with OR: a key is blocked if any mask blocks it.
is_causal adds the bottom-right causal mask (key j blocked when j > i + (S - L)).

Which conventions are PyTorch's and which are this module's: the scale 1/sqrt(head_dim), bool
masks with True = blocked and key_padding_mask are nn.MultiheadAttention's. This module's own:
key defaults to query and value to key (nn.MultiheadAttention requires all three); is_causal
builds the bottom-right mask by itself (nn.MultiheadAttention's is only a hint that needs
attn_mask, and F.scaled_dot_product_attention(is_causal=True) aligns top-left); weights per
head (nn.MultiheadAttention averages them by default); finite rows where no key is seen
(nn.MultiheadAttention gives NaN). All of PyTorch's conventions, side by side:
exercises/conventions.md.

This file is self-contained: it may not import the other exercises; rewrite the few lines you
need. Forbidden: torch.nn.MultiheadAttention, torch.nn.functional.scaled_dot_product_attention,
torch.nn.functional.multi_head_attention_forward and any other fused attention route.

Forbidden in this file: NumPy (import torch and the standard library only): work done in NumPy
is hidden from the grader's checks, so a file that uses it scores 0, and the report says so.
"""
import math

import torch
from torch import nn


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads, bias=True):
        """Given: validates the sizes and creates the four projections."""
        super().__init__()
        if num_heads <= 0 or d_model % num_heads != 0:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
        self.d_model = d_model
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, query, key=None, value=None, key_padding_mask=None, attn_mask=None,
                is_causal=False, need_weights=False):
        """Multi-head attention of query over key/value.

        Args:
            query: (B, L, D).
            key: (B, S, D); None means key = query (self-attention).
            value: (B, S, D); None means value = key.
            key_padding_mask: bool (B, S), True = padding key; or None.
            attn_mask: bool (L, S), or 4-D broadcastable to (B, H, L, S), True = blocked; or None.
                Masks combine with OR: a key is blocked if any of them blocks it.
            is_causal: add the bottom-right causal mask (L, S), key j blocked when j > i + (S - L),
                with or without attn_mask.
            need_weights: also return the attention weights.

        Returns:
            out (B, L, D), or (out, weights) with weights (B, H, L, S) per head (not averaged)
            when need_weights. Take B, L, S from the tensors: any batch size, L != S. On every
            query that sees a key, equal to nn.MultiheadAttention(batch_first=True) in eval mode
            with the same weights; every row is finite, also a query that sees no key (fill
            blocked scores with torch.finfo(dtype).min, not -inf), in float16 and bfloat16 too.

        Steps (H = self.num_heads, d = self.head_dim, D = H * d):
            key, value              key defaults to query, value to key; B, L from query, S from key
            q       (B, L, D)       query through self.q_proj
            k, v    (B, S, D)       key through self.k_proj, value through self.v_proj
            q       (B, H, L, d)    split heads: `reshape` to (B, L, H, d), then `transpose` L and H
            k, v    (B, H, S, d)    the same split for each
            scores  (B, H, L, S)    every query against every key (k's last two axes swapped), divided by
                                    sqrt(d), the head size, not D
            mask    (L, S) bool     start from nothing blocked (`torch.zeros` with dtype bool, on query's
                                    device)
            mask    (L, S) or 4-D   OR in attn_mask when given (`|`): (L, S), or 4-D broadcastable to
                                    (B, H, L, S)
            mask    (L, S) or 4-D   OR in the bottom-right causal mask when is_causal: key j blocked when
                                    j > i + (S - L), built from two `torch.arange`s as in exercise 04
            mask    (B, H|1, L, S)  OR in key_padding_mask when given, first lifted from (B, S) to
                                    (B, 1, 1, S) (`None` indexing), so it hides keys from every head and
                                    every query
            scores  (B, H, L, S)    blocked scores set to `torch.finfo(dtype).min` (`masked_fill`), not -inf
            weights (B, H, L, S)    softmax over the key axis (`torch.softmax` is allowed), in float32 for
                                    float16/bfloat16, cast back to q's dtype
            out     (B, H, L, d)    the weights weighting the values
            out     (B, L, D)       merge heads: `transpose` back to (B, L, H, d), then `reshape`
            out     (B, L, D)       through self.out_proj
            return out, or (out, weights) when need_weights
        """
        raise NotImplementedError("TODO: project, split heads, score, mask, softmax, weight v, merge, out_proj")
