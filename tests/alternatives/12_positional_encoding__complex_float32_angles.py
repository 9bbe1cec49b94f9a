"""RoPE as multiplication by unit complex numbers, with Hugging Face-style float32 angles;
sinusoids from exp(-log(base)·2i/d) written column by column."""
import math

import torch


def sinusoidal_encoding(L, d_model, base=10000.0):
    if d_model % 2:
        raise ValueError("d_model must be even")
    position = torch.arange(L).float().unsqueeze(1)                            # (L, 1)
    div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(base) / d_model))
    pe = torch.zeros(L, d_model)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


def apply_rope(x, positions=None, base=10000.0):
    L, d = x.shape[-2:]
    half = d // 2
    if positions is None:
        positions = torch.arange(L, device=x.device)
    inv_freq = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.int64, device=x.device).float() / d))   # float32, as in HF
    freqs = torch.outer(positions.float(), inv_freq)                                  # (L, d/2) float32
    ctype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    turn = torch.polar(torch.ones_like(freqs), freqs).to(ctype)
    wide = x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    z = torch.complex(wide[..., :half].contiguous(), wide[..., half:].contiguous()) * turn
    return torch.cat((z.real, z.imag), dim=-1).to(x.dtype)
