# mistake: last_key_block_dropped   (the short last key block is dropped)
"""Tiled attention with an online softmax, FlashAttention-style (reference).

Plain attention materialises the (L, S) score matrix: O(L·S) memory per head, and on a GPU the
traffic to and from that matrix, not the FLOPs, sets the speed. FlashAttention walks over key
blocks and keeps, per query, only a running max m, a running normaliser l and an unnormalised
output accumulator. When a new block raises the max, the old sum and accumulator are rescaled by
exp(m_old - m_new), so the result is exact, never an approximation. Memory drops to O(L·d).
"""
import math

import torch


def flash_attention(q, k, v, causal=False, scale=None, block_size=64):
    """q (B, H, L, d_k), k (B, H, S, d_k), v (B, H, S, d_v) -> out (B, H, L, d_v), lse (B, H, L) float32.

    Causal alignment is bottom-right: query i sees keys j <= i + (S - L).
    """
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    B, H, L, d_k = q.shape
    S, d_v = k.shape[-2], v.shape[-1]
    if scale is None:
        scale = 1.0 / math.sqrt(d_k)
    offset = S - L
    # Accumulate in float32 at least (float64 stays float64): half precision cannot hold the
    # running sums. lse is returned in float32 whatever the input.
    work = torch.promote_types(q.dtype, torch.float32)

    out = torch.empty(B, H, L, d_v, dtype=q.dtype, device=q.device)
    lse = torch.empty(B, H, L, dtype=torch.float32, device=q.device)

    for q0 in range(0, L, block_size):
        q1 = min(q0 + block_size, L)
        qb = q[:, :, q0:q1].to(work) * scale                      # (B, H, Bq, d_k), scale folded in once
        m = torch.full((B, H, q1 - q0), -math.inf, dtype=work, device=q.device)  # running max
        l = torch.zeros(B, H, q1 - q0, dtype=work, device=q.device)            # running sum of exp
        acc = torch.zeros(B, H, q1 - q0, d_v, dtype=work, device=q.device)     # unnormalised output

        # Under causal, the block's last query q1 - 1 sees keys up to q1 - 1 + offset: key blocks
        # starting past that are wholly masked and are never computed.
        k_stop = min(S, q1 + offset) if causal else S
        for k0 in range(0, k_stop // block_size * block_size, block_size):
            k1 = min(k0 + block_size, S)
            s = qb @ k[:, :, k0:k1].to(work).transpose(-2, -1)    # (B, H, Bq, Bk)
            if causal and k1 - 1 > q0 + offset:                   # block crosses the diagonal
                i = torch.arange(q0, q1, device=q.device)[:, None]
                j = torch.arange(k0, k1, device=q.device)[None, :]
                s = s.masked_fill(j > i + offset, -math.inf)     # (Bq, Bk) mask, one tile only

            m_new = torch.maximum(m, s.amax(dim=-1))              # (B, H, Bq)
            # A row that has seen no key yet has m_new = -inf; shift it by 0 instead, since
            # exp(-inf - (-inf)) would be NaN. Its p and alpha then come out 0, as they should.
            shift = torch.where(m_new == -math.inf, 0.0, m_new)
            p = torch.exp(s - shift[..., None])                   # (B, H, Bq, Bk)
            alpha = torch.exp(m - shift)                          # (B, H, Bq): rescales the old terms
            l = l * alpha + p.sum(dim=-1)
            acc = acc * alpha[..., None] + p @ v[:, :, k0:k1].to(work)  # (B, H, Bq, d_v)
            m = m_new

        # A query that saw no key has l = 0 and acc = 0: out 0, lse = -inf + log 0 = -inf.
        out[:, :, q0:q1] = (acc / torch.where(l == 0, 1.0, l)[..., None]).to(q.dtype)
        lse[:, :, q0:q1] = m + torch.log(l)
    return out, lse
