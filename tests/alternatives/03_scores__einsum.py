"""Alternative 03: einsum over the key size, with q pre-scaled."""
import math

import torch


def attention_scores(q, k, scale=None):
    s = (1.0 / math.sqrt(q.size(-1))) if scale is None else float(scale)
    return torch.einsum("...ld,...sd->...ls", q * s, k)
