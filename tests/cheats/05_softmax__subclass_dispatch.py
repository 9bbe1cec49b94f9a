# attack: a wrapper tensor subclass whose __torch_dispatch__ answers aten.exp with the library softmax: a subclass's handler runs after the dispatch watch has passed the op on, where nothing watches
# layer: the watch refuses an op that a tensor subclass would handle, before its handler runs + static scan
# expect: softmax
# runtime: own __torch_dispatch__
import torch


class Hidden(torch.Tensor):
    @staticmethod
    def __new__(cls, elem):
        made = torch.Tensor._make_wrapper_subclass(cls, elem.shape, dtype=elem.dtype, device=elem.device)
        made.elem = elem
        return made

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        plain = [a.elem if type(a) is Hidden else a for a in args]
        if func is torch.ops.aten.exp.default:
            return torch.softmax(plain[0].float(), -1).to(plain[0].dtype)
        return func(*plain, **(kwargs or {}))


def softmax(x, dim=-1):
    return Hidden(x.movedim(dim, -1)).exp().movedim(-1, dim)
