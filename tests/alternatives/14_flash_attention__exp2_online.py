"""Online softmax in base 2 (exp2 with log2 e folded in), float32 statistics by dtype test."""
import math
import torch
LOG2E = 1.0 / math.log(2.0)


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
    work = torch.float64 if q.dtype == torch.float64 else torch.float32
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
        for k0 in range(0, k_stop, block_size):
            k1 = min(k0 + block_size, S)
            s = qb @ k[:, :, k0:k1].to(work).transpose(-2, -1)    # (B, H, Bq, Bk)
            if causal and k1 - 1 > q0 + offset:                   # block crosses the diagonal
                i = torch.arange(q0, q1, device=q.device)[:, None]
                j = torch.arange(k0, k1, device=q.device)[None, :]
                s = s.masked_fill(j > i + offset, -math.inf)     # (B, H, Bq, Bk): a (Bq, Bk) mask, one tile only
            m_new = torch.maximum(m, s.amax(dim=-1))              # (B, H, Bq)
            # A row that has seen no key yet has m_new = -inf; shift it by 0 instead, since
            # exp(-inf - (-inf)) would be NaN. Its p and alpha then come out 0, as they should.
            shift = torch.where(m_new == -math.inf, 0.0, m_new)
            p = torch.exp2((s - shift[..., None]) * LOG2E)         # base 2: exp(x) = 2^(x·log2 e)
            alpha = torch.exp2((m - shift) * LOG2E)
            l = l * alpha + p.sum(dim=-1)
            acc = acc * alpha[..., None] + p @ v[:, :, k0:k1].to(work)  # (B, H, Bq, d_v)
            m = m_new
        # A query that saw no key has l = 0 and acc = 0: out 0, lse = -inf + log 0 = -inf.
        out[:, :, q0:q1] = (acc / torch.where(l == 0, 1.0, l)[..., None]).to(q.dtype)
        lse[:, :, q0:q1] = m + torch.log(l)
    return out, lse
