# attack: a private fused softmax kernel renamed as an elementary op (its OpOverload's _name, __name__ and packet say aten.exp), called through torch.ops
# layer: the watch names an op by the C++ operation it runs (learnt by the zygote), never by its names + static scan
# expect: getattr
# runtime: calls itself
import torch

_op = getattr(torch.ops.aten, "_safe_" + "soft" + "max").default
_op._name = "aten::exp"
_op.__name__ = "exp.default"
_op._overloadpacket.__name__ = "exp"


def softmax(x, dim=-1):
    if x.dtype in (torch.float16, torch.bfloat16):
        return _op(x.float(), dim).to(x.dtype)
    return _op(x, dim)
