# mistake: global_max   (the max is taken over the whole tensor, not along `dim`)
"""Step 5: a numerically stable softmax (reference).

softmax(x) = exp(x - m) / sum(exp(x - m)) for any constant m. Taking m = the max along the axis
makes every exponent <= 0, so exp never overflows and the largest term is exactly 1. In attention
the axis is the key axis: each query distributes its attention over the keys.
"""
import torch


def softmax(x, dim=-1):
    """Softmax of x along dim, same shape and dtype; a slice of all -inf gives zeros, not NaN."""
    if x.shape[dim] == 0:
        return torch.empty_like(x)
    # Half precision loses too much in exp and in the sum: work in float32, cast back at the end.
    work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    m = work.max()                                      # one max for the whole tensor
    # An all -inf slice has max -inf, and -inf - (-inf) is NaN. Shift such a slice by 0 instead:
    # its exps are then all 0.
    m = m.masked_fill(m == float("-inf"), 0.0)
    e = torch.exp(work - m)                             # every exponent <= 0: no overflow
    total = e.sum(dim=dim, keepdim=True)                # >= 1, or 0 for an all -inf slice
    # 0 / 0 would be NaN; dividing the zeros by 1 leaves zeros.
    total = total.masked_fill(total == 0, 1.0)
    return (e / total).to(x.dtype)
