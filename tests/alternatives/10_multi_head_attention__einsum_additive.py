"""The module with einsum and an additive float mask built from the combined bool mask."""
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
        if key is None:
            key = query
        if value is None:
            value = key
        B, L, D = query.shape
        S = key.shape[-2]
        H = self.num_heads
        q = self.q_proj(query).unflatten(-1, (H, -1))      # (B, L, H, d)
        k = self.k_proj(key).unflatten(-1, (H, -1))        # (B, S, H, d)
        v = self.v_proj(value).unflatten(-1, (H, -1))
        scores = torch.einsum("blhd,bshd->bhls", q.double(), k.double()) / math.sqrt(self.head_dim)
        blocked = torch.zeros(L, S, dtype=torch.bool, device=query.device)
        if is_causal:
            blocked = torch.ones(L, S, dtype=torch.bool, device=query.device).triu(S - L + 1)
        if attn_mask is not None:
            blocked = blocked | attn_mask
        if key_padding_mask is not None:
            blocked = blocked | key_padding_mask[:, None, None, :]
        # -1e30 added, not filled: a row blocked everywhere is shifted as a whole and stays finite
        scores = scores + blocked.double() * -1e30
        weights = torch.softmax(scores, dim=-1)
        out = torch.einsum("bhls,bshd->blhd", weights, v.double()).flatten(-2).to(query.dtype)
        out = self.out_proj(out)
        return (out, weights.to(query.dtype)) if need_weights else out
