# mistake: dim_ignored   (the `dim` argument is ignored)
"""Step 5: a numerically stable softmax (reference).

softmax(x) = exp(x - m) / sum(exp(x - m)) for any constant m. Taking m = the max along the axis
makes every exponent <= 0, so exp never overflows and the largest term is exactly 1. In attention
the axis is the key axis: each query distributes its attention over the keys.
"""
import torch


def softmax(x, dim=-1):
    work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    m = work.amax(dim=-1, keepdim=True)
    m = m.masked_fill(m == float("-inf"), 0.0)
    e = torch.exp(work - m)
    total = e.sum(dim=-1, keepdim=True)
    total = total.masked_fill(total == 0, 1.0)
    return (e / total).to(x.dtype)
