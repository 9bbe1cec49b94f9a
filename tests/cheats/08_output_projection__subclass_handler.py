# attack: a tensor subclass whose own __torch_function__ calls the forbidden F.linear: the function watch steps aside while a subclass's handler runs, and F.linear decomposes into elementary ops before dispatch
# layer: the watch refuses a tensor type whose __torch_function__ is not torch's own, before its handler runs + static scan
# expect: linear
# runtime: own __torch_function__
import torch

_BIAS = [None]


class Projected(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func is torch.Tensor.mul:
            x, w_o = args
            return torch.nn.functional.linear(x, w_o, _BIAS[0])
        return super().__torch_function__(func, types, args, kwargs or {})


def output_projection(x, w_o, b_o=None):
    _BIAS[0] = b_o
    return x.as_subclass(Projected).mul(w_o).as_subclass(torch.Tensor)
