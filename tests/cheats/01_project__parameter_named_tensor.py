# attack: return an nn.Parameter subclass named "Tensor" whose methods call F.linear while the reply is made, outside the watch
# layer: replies are data: only exact types are encoded, with torch's C methods, no __torch_function__ consulted
# expect: in place of a plain tensor
# runtime: in place of a plain tensor
import torch


class Tensor(torch.nn.Parameter):
    def detach(self):
        return torch.nn.functional.linear(torch.Tensor.detach(self), torch.eye(self.shape[-1]))

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        torch.nn.functional.linear(torch.ones(1), torch.ones(1, 1))
        return super().__torch_function__(func, types, args, kwargs or {})


def linear(x, weight, bias=None):
    out = torch.einsum("...i,oi->...o", x, weight)
    if bias is not None:
        out = out + bias
    return Tensor(out, requires_grad=False)


def project_qkv(x, w_q, w_k, w_v, b_q=None, b_k=None, b_v=None, context=None):
    src = x if context is None else context
    return linear(x, w_q, b_q), linear(src, w_k, b_k), linear(src, w_v, b_v)
