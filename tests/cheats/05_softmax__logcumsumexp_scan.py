# attack: a scan (torch.logcumsumexp) whose last entry is the logsumexp the exercise forbids
# layer: the watch's allow-list (a scan is not elementary)
# expect: logcumsumexp
# runtime: logcumsumexp
import torch


def softmax(x, dim=-1):
    lse = torch.logcumsumexp(x.double(), dim).narrow(dim, x.shape[dim] - 1, 1)
    out = torch.exp(x.double() - lse)
    return torch.nan_to_num(out, nan=0.0).to(x.dtype)
