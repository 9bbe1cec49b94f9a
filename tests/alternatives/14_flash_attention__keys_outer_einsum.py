"""Tiled attention with the loops swapped: key blocks outside, query blocks inside (as in
FlashAttention-1), the running max, sum and accumulator kept for every query; einsum products."""
import math

import torch


def flash_attention(q, k, v, causal=False, scale=None, block_size=64):
    B, H, L, d_k = q.shape
    S, d_v = k.shape[2], v.shape[3]
    scale = 1.0 / math.sqrt(d_k) if scale is None else scale
    work = torch.float64 if q.dtype == torch.float64 else torch.float32
    m = torch.full((B, H, L), float("-inf"), dtype=work, device=q.device)
    l = torch.zeros(B, H, L, dtype=work, device=q.device)
    acc = torch.zeros(B, H, L, d_v, dtype=work, device=q.device)
    for k0 in range(0, S, block_size):
        k1 = min(S, k0 + block_size)
        kb, vb = k[:, :, k0:k1].to(work), v[:, :, k0:k1].to(work)
        # Under causal, query i sees key k0 only when i >= k0 - (S - L): earlier query blocks are skipped.
        first = max(0, k0 - (S - L)) // block_size * block_size if causal else 0
        for q0 in range(first, L, block_size):
            q1 = min(L, q0 + block_size)
            s = torch.einsum("bhid,bhjd->bhij", q[:, :, q0:q1].to(work), kb) * scale
            if causal:
                i = torch.arange(q0, q1, device=q.device)[:, None] + (S - L)
                j = torch.arange(k0, k1, device=q.device)[None, :]
                s = torch.where(j > i, float("-inf"), s)
            m_old = m[:, :, q0:q1]
            m_new = torch.maximum(m_old, s.max(dim=-1).values)
            safe = torch.where(torch.isneginf(m_new), torch.zeros_like(m_new), m_new)
            p = torch.exp(s - safe.unsqueeze(-1))
            corr = torch.exp(m_old - safe)
            l[:, :, q0:q1] = l[:, :, q0:q1] * corr + p.sum(-1)
            acc[:, :, q0:q1] = acc[:, :, q0:q1] * corr.unsqueeze(-1) + torch.einsum("bhij,bhjd->bhid", p, vb)
            m[:, :, q0:q1] = m_new
    out = torch.where(l.unsqueeze(-1) > 0, acc / l.clamp_min(1e-300 if work == torch.float64 else 1e-30).unsqueeze(-1), 0.0)
    return out.to(q.dtype), (m + torch.log(l)).float()
