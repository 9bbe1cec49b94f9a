# attack: a private fused kernel under another name (torch._masked_softmax) as the softmax
# layer: the watch's allow-list (a private `_` kernel is not elementary) + static scan
# expect: masked_softmax
# runtime: masked_softmax
import torch


def softmax(x, dim=-1):
    nothing = torch.zeros_like(x, dtype=torch.bool)
    return torch._masked_softmax(x, nothing, dim % x.dim(), 0)
