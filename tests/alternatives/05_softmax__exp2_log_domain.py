"""Softmax in base 2: exp2 of the shifted logits times log2(e), normalised in the log domain
(x - m - log(sum)), with where for the all -inf slice."""
import math

import torch

LOG2E = 1.0 / math.log(2.0)


def softmax(x, dim=-1):
    if x.shape[dim] == 0:
        return torch.empty_like(x)
    work = x.to(torch.float32) if x.dtype in (torch.float16, torch.bfloat16) else x
    m = work.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isinf(m) & (m < 0), torch.zeros_like(m), m)
    total = torch.exp2((work - m) * LOG2E).sum(dim=dim, keepdim=True)
    log_total = torch.log(torch.where(total > 0, total, torch.ones_like(total)))
    out = torch.exp2((work - m - log_total) * LOG2E)
    return torch.where(total > 0, out, torch.zeros_like(out)).to(x.dtype)
