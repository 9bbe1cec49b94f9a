"""The module with F.linear on the layers' parameters and an explicit loop over heads."""
import math

import torch
import torch.nn.functional as F
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
        key = query if key is None else key
        value = key if value is None else value
        B, L, _ = query.shape
        S = key.shape[1]
        H, d = self.num_heads, self.head_dim
        q = F.linear(query, self.q_proj.weight, self.q_proj.bias)
        k = F.linear(key, self.k_proj.weight, self.k_proj.bias)
        v = F.linear(value, self.v_proj.weight, self.v_proj.bias)
        blocked = torch.zeros(B, H, L, S, dtype=torch.bool, device=query.device)
        if attn_mask is not None:
            blocked = blocked | attn_mask.expand(B, H, L, S) if attn_mask.dim() == 4 else blocked | attn_mask
        if is_causal:
            rows = torch.arange(L, device=query.device).unsqueeze(1)
            cols = torch.arange(S, device=query.device).unsqueeze(0)
            blocked = blocked | (cols - rows > S - L)
        if key_padding_mask is not None:
            blocked = blocked | key_padding_mask.view(B, 1, 1, S)
        outs, weights = [], []
        wide = torch.float32 if query.dtype in (torch.float16, torch.bfloat16) else query.dtype
        for h in range(H):
            part = slice(h * d, (h + 1) * d)
            scores = q[..., part].to(wide) @ k[..., part].to(wide).transpose(1, 2) / math.sqrt(d)   # (B, L, S)
            scores = torch.where(blocked[:, h], torch.finfo(wide).min, scores)
            w = torch.softmax(scores, dim=-1)
            outs.append((w @ v[..., part].to(wide)).to(query.dtype))
            weights.append(w.to(query.dtype))
        out = F.linear(torch.cat(outs, dim=-1), self.out_proj.weight, self.out_proj.bias)
        if need_weights:
            return out, torch.stack(weights, dim=1)
        return out
