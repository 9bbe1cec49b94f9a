# attack: take the grader's watch off torch's mode stack (_disable_current_modes), call the fused kernel, put it back
# layer: the mode-stack guard (refuses the submission's pops) + static scan
# expect: _disable_current_modes
# runtime: _disable_current_modes
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import _disable_current_modes


def flash_attention(q, k, v, causal=False, scale=None, block_size=64):
    with _disable_current_modes():
        fused = getattr(F, "scaled_dot_product_attention")
        out = fused(q, k, v, is_causal=causal, scale=scale)
    return out, torch.zeros(q.shape[:-1])
