"""Exercise 13 (follow-up): a KV cache for autoregressive decoding.

The interview question: "how does inference avoid recomputing attention over the whole prefix?"

A decoder generates one token per step. At step t only the new token's query, key and value are
new: the keys and values of the earlier tokens are exactly what they were last step. So keep
them in a cache and, each step, project only the new token, append its key and value, and let
its query attend over everything stored. Each step's attention then costs O(t · d) instead of
recomputing the full O(t² · d) prefix.

The cache is preallocated once at its maximum length and filled in place. Growing it with
`torch.cat` every step would copy the whole cache each time (O(t) copying per token, O(t²)
overall) and reallocate memory on every step.

The new tokens sit at the end of the sequence, so the causal mask is aligned bottom-right:
query t of a chunk of T new tokens, with `before` tokens already cached, sees key j if and only
if j <= before + t. The first call (the prompt, "prefill") is plain causal attention; each later
call with one token sees every key. Prefill then token-by-token decoding must equal full causal
attention over the whole sequence.

Rules: no fused attention kernels (`F.scaled_dot_product_attention` and friends). A library
softmax is allowed here.
"""
import math

import torch


class KVCache:
    """Preallocated key and value buffers for one attention layer, filled left to right."""

    def __init__(self, batch, num_heads, max_len, head_dim, dtype=torch.float32, device=None):
        """Allocate the buffers once.

        Args:
            batch, num_heads, max_len, head_dim: ints; max_len is the most tokens it can hold.
            dtype, device: those of the buffers (and of every tensor later appended).

        Steps:
            self.k = torch.zeros(batch, num_heads, max_len, head_dim, dtype=dtype, device=device)
                                                          # (B, H, max_len, d)   keys
            self.v = torch.zeros(batch, num_heads, max_len, head_dim, dtype=dtype, device=device)
                                                          # (B, H, max_len, d)   values (same head_dim)
            self.max_len = max_len
            self.length = 0                               # tokens stored so far

        These two buffers are the only storage the cache ever uses: update writes into them.
        """
        raise NotImplementedError("TODO: preallocate the key and value buffers")

    def __len__(self):
        """The number of tokens stored so far (0 for a new cache)."""
        raise NotImplementedError("TODO: return the number of tokens stored")

    def update(self, k_new, v_new):
        """Append new keys and values; return everything stored.

        Args:
            k_new, v_new: (B, H, T, d), T >= 0 new tokens, with the cache's batch, head count,
                head size, dtype and device.

        Returns:
            (k, v): views into the cache's own buffers, each (B, H, len, d) with len the new total.
            No copy of the cache is made: they share memory with self.k and self.v.

        Raises:
            ValueError, leaving the cache exactly as it was (check everything before writing), if:
            the new total would exceed max_len; k_new and v_new differ in shape; or the batch,
            head count, head size, dtype or device differ from the cache's.

        Steps:
            validate shapes, dtype, device and room       # before any write
            start, end = self.length, self.length + T
            self.k[:, :, start:end] = k_new                # (B, H, T, d) written in place into (B, H, max_len, d)
            self.v[:, :, start:end] = v_new                # (B, H, T, d)
            self.length = end
            return self.k[:, :, :end], self.v[:, :, :end]  # (B, H, len, d) views, no copy

        Never `torch.cat` or reallocate: the views returned must share memory with self.k, self.v.
        """
        raise NotImplementedError("TODO: write k_new, v_new into the buffers in place")


def cached_attention(q_new, k_new, v_new, cache, scale=None):
    """One decoding (or prefill) step: append to the cache, then attend over everything stored.

    Args:
        q_new: (B, H, T, d_k) queries of the T new tokens.
        k_new, v_new: (B, H, T, d) their keys and values, appended to `cache`.
        cache: a KVCache, updated in place.
        scale: None means 1 / sqrt(d_k); any number, 0.0 included, is used as given.

    Returns:
        (B, H, T, d_v) attention output for the new tokens, in q_new's dtype and device.

    Raises:
        ValueError from `cache.update` (overflow, mismatched shapes, dtype or device).

    Steps:
        before = len(cache)
        k, v = cache.update(k_new, v_new)                # (B, H, S, d), S = before + T
        scores = q_new @ k.transpose(-2, -1) * scale     # (B, H, T, d_k) @ (B, H, d_k, S) -> (B, H, T, S)
        mask = ones(T, S, bool).triu(S - T + 1)          # (T, S)  True where key j > before + t: bottom-right
        scores = scores.masked_fill(mask, finfo.min)     # (B, H, T, S)
        probs = softmax(scores, dim=-1)                  # (B, H, T, S)  float32 for fp16/bf16, cast back
        out = probs @ v                                  # (B, H, T, S) @ (B, H, S, d_v) -> (B, H, T, d_v)

    Mistake to avoid: a top-left mask (`triu(1)`) hides the cached keys from the new tokens.
    """
    raise NotImplementedError("TODO: update the cache, then attend with a bottom-right causal mask")
