"""Sinusoidal and rotary positional encodings (reference).

Self-attention without a causal mask is permutation-equivariant: shuffle the tokens and the
outputs shuffle the same way. Order must be injected. Sinusoidal encodings (Vaswani et al.) are
added to the embeddings once; RoPE rotates q and k by a position-dependent angle, so q·k depends
only on the signed offset m − n between the query's position m and the key's n.
"""
import torch


def sinusoidal_encoding(L, d_model, base=10000.0):
    """(L, d_model) float32: PE[p, 2i] = sin(p / base^(2i/d)), PE[p, 2i+1] = cos(same)."""
    if d_model % 2 != 0:
        raise ValueError(f"d_model must be even, got {d_model}")
    # Angles in float64: p / base^(2i/d) loses digits in float32 once p is large.
    pos = torch.arange(L, dtype=torch.float64)[:, None]                   # (L, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)              # (d/2,)
    angle = pos / base ** (two_i / d_model)                               # (L, d/2)
    # Stack on a last axis then flatten: sin lands on even features, cos on odd.
    pe = torch.stack((angle.sin(), angle.cos()), dim=-1)                  # (L, d/2, 2)
    return pe.reshape(L, d_model).float()                                 # (L, d_model)


def apply_rope(x, positions=None, base=10000.0):
    """x (..., L, d) -> (..., L, d): rotate pair (i, i + d/2) by angle p * base^(-2i/d)."""
    L, d = x.shape[-2], x.shape[-1]
    if d % 2 != 0:
        raise ValueError(f"rotary embeddings need an even head size, got {d}")
    half = d // 2
    if positions is None:
        positions = torch.arange(L, device=x.device)
    positions = torch.as_tensor(positions, device=x.device)

    inv_freq = base ** (-torch.arange(half, dtype=torch.float64, device=x.device) * 2 / d)  # (d/2,)
    angle = positions.to(torch.float64)[:, None] * inv_freq                               # (L, d/2)
    # Rotate in at least float32 and cast back: keeps half inputs accurate, float64 exact.
    work = torch.promote_types(x.dtype, torch.float32)
    cos, sin = angle.cos().to(work), angle.sin().to(work)                                 # (L, d/2)

    x1, x2 = x[..., :half].to(work), x[..., half:].to(work)                               # (..., L, d/2)
    # Each pair (x1, x2) is a 2-D vector turned by its angle.
    out = torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)                  # (..., L, d)
    return out.to(x.dtype)
