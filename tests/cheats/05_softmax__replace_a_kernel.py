# attack: replace aten::exp's CPU kernel with a Python function that returns the library softmax, through the dispatcher's C handle (the dispatcher then runs it below the watch, which passed aten.exp)
# layer: registering a kernel with torch's dispatcher while the submission is on the stack is refused (fences.guard_registrations) + static scan
# expect: softmax
# runtime: registering a kernel
import torch

_lib = torch._C._dispatch_library("IMPL", "aten", "")


def _exp_is_softmax(x):
    return torch.softmax(x.float(), -1).to(x.dtype)


_lib.impl("exp", torch._C.DispatchKey.CPU, _exp_is_softmax)


def softmax(x, dim=-1):
    return x.movedim(dim, -1).exp().movedim(-1, dim)
