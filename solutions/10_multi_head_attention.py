"""All eight steps: a multi-head attention module (reference).

Project, split heads, score, mask, softmax, weight the values, merge heads, project out. Matches
nn.MultiheadAttention(batch_first=True) in eval mode, except that a query which sees no key
comes out finite (nn.MultiheadAttention gives NaN there).
"""
import math

import torch
from torch import nn


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads, bias=True):
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
        """query (B, L, D), key/value (B, S, D) -> out (B, L, D), or (out, weights (B, H, L, S)).

        key defaults to query (self-attention), value to key. Masks are bool, True = blocked:
        key_padding_mask (B, S); attn_mask (L, S) or 4-D broadcastable to (B, H, L, S);
        is_causal adds the bottom-right causal mask. A key is blocked if any mask blocks it.
        """
        if key is None:
            key = query
        if value is None:
            value = key
        B, L, D = query.shape
        S = key.shape[1]
        H, d = self.num_heads, self.head_dim

        # 1-2. Project, then split the features into H heads of d: (B, len, D) -> (B, H, len, d).
        q = self.q_proj(query).reshape(B, L, H, d).transpose(1, 2)   # (B, H, L, d)
        k = self.k_proj(key).reshape(B, S, H, d).transpose(1, 2)     # (B, H, S, d)
        v = self.v_proj(value).reshape(B, S, H, d).transpose(1, 2)   # (B, H, S, d)

        # 3. Scores, scaled by the per-head key size.
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(d)            # (B, H, L, S)

        # 4. One combined mask, broadcastable to (B, H, L, S).
        mask = torch.zeros(L, S, dtype=torch.bool, device=query.device)          # (L, S)
        if attn_mask is not None:
            mask = mask | attn_mask                                   # (L, S) or (B|1, H|1, L, S)
        if is_causal:
            i = torch.arange(L, device=query.device)[:, None]
            j = torch.arange(S, device=query.device)[None, :]
            mask = mask | (j > i + (S - L))                           # bottom-right aligned
        if key_padding_mask is not None:
            # Padding hides keys (last axis) from every head and every query.
            mask = mask | key_padding_mask[:, None, None, :]          # (B, 1, L, S): padding (B, 1, 1, S) broadcast
        # Finite fill: a query that sees no key gets uniform weights instead of NaN.
        scores = scores.masked_fill(mask, torch.finfo(scores.dtype).min)

        # 5. Softmax over the key axis, in float32 for half precision.
        wide = torch.float32 if scores.dtype in (torch.float16, torch.bfloat16) else scores.dtype
        weights = torch.softmax(scores.to(wide), dim=-1).to(q.dtype)  # (B, H, L, S)

        # 6-8. Weight the values, merge the heads, mix them with the output projection.
        out = weights @ v                                             # (B, H, L, d)
        out = out.transpose(1, 2).reshape(B, L, D)                    # (B, L, D)
        out = self.out_proj(out)                                      # (B, L, D)
        return (out, weights) if need_weights else out
