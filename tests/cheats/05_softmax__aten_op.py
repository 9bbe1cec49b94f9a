# attack: the aten softmax kernel through torch.ops with a built-up name (torch.ops.aten._softmax)
# layer: the watch (TorchDispatchMode sees the aten op) + static scan
import torch

_op = getattr(torch.ops.aten, "_" + "soft" + "max")


def softmax(x, dim=-1):
    if x.dtype in (torch.float16, torch.bfloat16):
        return _op(x.float(), dim, False).to(x.dtype)
    return _op(x, dim, False)
