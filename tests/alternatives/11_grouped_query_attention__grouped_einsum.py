"""GQA without materialising repeated heads: query heads are grouped (B, H_kv, n_rep, L, d) and
each group attends with its own kv head through einsum; softmax written by hand."""
import torch


def repeat_kv(x, n_rep):
    return torch.repeat_interleave(x, n_rep, dim=1)


def grouped_query_attention(q, k, v, mask=None, scale=None):
    B, H_q, L, d_k = q.shape
    H_kv, S = k.shape[1], k.shape[2]
    if H_q % H_kv:
        raise ValueError("H_q must be a multiple of H_kv")
    n_rep = H_q // H_kv
    scale = d_k ** -0.5 if scale is None else scale
    qg = q.reshape(B, H_kv, n_rep, L, d_k)
    s = torch.einsum("bgrld,bgsd->bgrls", qg, k) * scale
    if mask is not None:
        m = mask.expand(B, H_q, L, S).reshape(B, H_kv, n_rep, L, S)
        s = s.masked_fill(m, torch.finfo(s.dtype).min)
    s32 = s.float() if s.dtype in (torch.float16, torch.bfloat16) else s
    e = (s32 - s32.amax(-1, keepdim=True)).exp()
    p = (e / e.sum(-1, keepdim=True)).to(v.dtype)
    out = torch.einsum("bgrls,bgsd->bgrld", p, v)
    return out.reshape(B, H_q, L, v.shape[-1])


def kv_cache_bytes(batch, seq_len, num_layers, num_kv_heads, head_dim, dtype):
    bits = torch.finfo(dtype).bits if dtype.is_floating_point else torch.iinfo(dtype).bits
    return 2 * num_layers * batch * num_kv_heads * seq_len * head_dim * bits // 8
