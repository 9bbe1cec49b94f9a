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

Forbidden in this file: NumPy (import torch and the standard library only): work done in NumPy
is hidden from the grader's checks, so a file that uses it scores 0, and the report says so.
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

        Steps (B = batch, H = num_heads, d = head_dim):
            self.k      (B, H, max_len, d)  keys, allocated once at full length (`torch.zeros` or
                                            `torch.empty`, with the given dtype and device)
            self.v      (B, H, max_len, d)  values, the same shape (keys and values share head_dim)
            self.max_len    int             kept for the overflow check
            self.length     int             tokens stored so far: 0

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

        Steps (k_new, v_new (B, H, T, d)):
            validate                        before any write: k_new and v_new the same 4-D shape, batch,
                                            heads and head size those of the buffers, same dtype and
                                            device, and room for T more tokens; else ValueError
            start, end  int                 the slots for the new tokens: from the current length to that
                                            plus T
            self.k      (B, H, max_len, d)  k_new written into slots [start, end) of the length axis, in
                                            place (assignment to a slice of the buffer)
            self.v      (B, H, max_len, d)  v_new likewise
            self.length int                 end
            return (k, v)   (B, H, end, d) each: the buffers sliced up to end along the length axis (views)

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
        (B, H, T, d_v) attention output for the new tokens, in q_new's dtype and device. The
        causal mask is aligned bottom-right: with `before` tokens cached on entry, new token t
        sees every key j <= before + t (all cached keys, and the new ones up to itself).

    Raises:
        ValueError from `cache.update` (overflow, mismatched shapes, dtype or device).

    Steps (q_new (B, H, T, d_k); `before` = len(cache) on entry):
        k, v    (B, H, S, d)    everything stored once the new tokens are appended (`cache.update`),
                                S = before + T
        scores  (B, H, T, S)    each new query against every stored key (k's last two axes swapped),
                                times scale (1 / sqrt(d_k) when None)
        mask    (T, S) bool     bottom-right causal, on q_new's device: True where key j > before + t
                                (`torch.triu` of a bool ones matrix with the right diagonal offset, or
                                two `torch.arange`s as in exercise 04)
        scores  (B, H, T, S)    blocked entries set to `torch.finfo(dtype).min` (`masked_fill`)
        probs   (B, H, T, S)    softmax over the key axis, in float32 for float16/bfloat16, cast back
        out     (B, H, T, d_v)  the probabilities weighting the values
        return out

    Mistake to avoid: a top-left mask (`triu(1)`) hides the cached keys from the new tokens.
    """
    raise NotImplementedError("TODO: update the cache, then attend with a bottom-right causal mask")
