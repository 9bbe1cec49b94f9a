"""One (2, B, H, max_len, d) buffer for keys and values, explicit checks, einsum attention."""
import math

import torch


class KVCache:
    def __init__(self, batch, num_heads, max_len, head_dim, dtype=torch.float32, device=None):
        self.buf = torch.empty(2, batch, num_heads, max_len, head_dim, dtype=dtype, device=device)
        self.n = 0

    def __len__(self):
        return self.n

    def update(self, k_new, v_new):
        _, B, H, M, d = self.buf.shape
        for t in (k_new, v_new):
            if t.ndim != 4 or t.shape[0] != B or t.shape[1] != H or t.shape[3] != d:
                raise ValueError(f"bad shape {tuple(t.shape)}")
            if t.dtype != self.buf.dtype:
                raise ValueError("dtype differs from the cache's")
            if t.device != self.buf.device:
                raise ValueError("device differs from the cache's")
        if k_new.shape != v_new.shape:
            raise ValueError("k_new and v_new differ")
        T = k_new.shape[2]
        if self.n + T > M:
            raise ValueError("the cache is full")
        self.buf[0, :, :, self.n:self.n + T].copy_(k_new)
        self.buf[1, :, :, self.n:self.n + T].copy_(v_new)
        self.n += T
        return self.buf[0, :, :, :self.n], self.buf[1, :, :, :self.n]


def cached_attention(q_new, k_new, v_new, cache, scale=None):
    k, v = cache.update(k_new, v_new)
    T, S = q_new.shape[2], k.shape[2]
    scale = 1 / math.sqrt(q_new.shape[-1]) if scale is None else scale
    wide = torch.promote_types(q_new.dtype, torch.float32)       # softmax in float32 at least
    s = torch.einsum("bhtd,bhsd->bhts", q_new.to(wide), k.to(wide)) * scale
    query_pos = torch.arange(S - T, S, device=q_new.device)[:, None]   # absolute positions of the new tokens
    key_pos = torch.arange(S, device=q_new.device)[None, :]
    s = s.masked_fill(key_pos > query_pos, float("-inf"))
    p = torch.softmax(s, dim=-1).to(v.dtype)
    return torch.einsum("bhts,bhsd->bhtd", p, v)
