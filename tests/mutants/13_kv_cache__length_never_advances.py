# uncatalogued: len(cache) never advances (every update writes at position 0)
"""KV cache for autoregressive decoding (reference).

At decoding step t only the newest token's query is new; the keys and values of every earlier
token are the same as last step. Caching them turns each step from O(t^2) work into O(t), at the
price of memory: two (B, H, max_len, d) buffers per layer. Preallocating them once and writing
into them keeps each step free of reallocation and copying (torch.cat every step is O(t) copying).
"""
import math

import torch


class KVCache:
    """Key and value buffers of shape (batch, num_heads, max_len, head_dim), filled left to right."""

    def __init__(self, batch, num_heads, max_len, head_dim, dtype=torch.float32, device=None):
        shape = (batch, num_heads, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)   # (B, H, max_len, d)
        self.v = torch.zeros(shape, dtype=dtype, device=device)   # (B, H, max_len, d)
        self.max_len = max_len
        self.length = 0                                           # tokens stored so far

    def __len__(self):
        return self.length

    def update(self, k_new, v_new):
        """Append k_new, v_new (B, H, T, d); return views (B, H, len, d) of everything stored."""
        # Check everything before writing anything, so a rejected update leaves the cache as it was.
        if k_new.shape != v_new.shape:
            raise ValueError(f"k_new {tuple(k_new.shape)} and v_new {tuple(v_new.shape)} differ in shape")
        if k_new.dim() != 4:
            raise ValueError(f"expected (B, H, T, d) tensors, got shape {tuple(k_new.shape)}")
        B, H, T, d = k_new.shape
        expected = (self.k.shape[0], self.k.shape[1], self.k.shape[3])
        if (B, H, d) != expected:
            raise ValueError(f"cache holds (B, H, d) = {expected}, got {(B, H, d)}")
        for t in (k_new, v_new):
            if t.dtype != self.k.dtype or t.device != self.k.device:
                raise ValueError(f"cache is {self.k.dtype} on {self.k.device}, got {t.dtype} on {t.device}")
        if self.length + T > self.max_len:
            raise ValueError(f"cache overflow: {self.length} stored + {T} new > max_len {self.max_len}")

        start, end = self.length, self.length + T
        self.k[:, :, start:end] = k_new            # in place: the buffers never move
        self.v[:, :, start:end] = v_new
        return self.k[:, :, :end], self.v[:, :, :end]   # views, (B, H, len, d)


def cached_attention(q_new, k_new, v_new, cache, scale=None):
    """Append the new keys/values, then attend q_new (B, H, T, d_k) over all stored keys -> (B, H, T, d_v)."""
    k, v = cache.update(k_new, v_new)                  # (B, H, S, d), S = tokens stored
    L, S = q_new.shape[-2], k.shape[-2]
    if scale is None:
        scale = 1.0 / math.sqrt(q_new.shape[-1])

    scores = (q_new @ k.transpose(-2, -1)) * scale     # (B, H, L, S)
    # Bottom-right causal mask: new query t sits at absolute position (S - L) + t, so it sees
    # every cached key and the new keys up to itself. True = blocked.
    mask = torch.ones(L, S, dtype=torch.bool, device=q_new.device).triu(S - L + 1)   # (L, S)
    scores = scores.masked_fill(mask, torch.finfo(scores.dtype).min)
    wide = torch.float32 if scores.dtype in (torch.float16, torch.bfloat16) else scores.dtype
    probs = scores.to(wide).softmax(dim=-1).to(v.dtype)                             # (B, H, L, S)
    return probs @ v                                                                # (B, H, L, d_v)
