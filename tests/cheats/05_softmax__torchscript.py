# attack: compile a library softmax with TorchScript from a string built at run time, so it runs below Python
# layer: the watch (TorchDispatchMode) + static scan
import torch

_unit = getattr(torch.jit, "Compilation" + "Unit")("def f(x, dim: int):\n    return torch." + "soft" + "max(x, dim)\n")


def softmax(x, dim=-1):
    return _unit.f(x, dim)
