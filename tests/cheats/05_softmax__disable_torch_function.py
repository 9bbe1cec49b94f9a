# attack: switch off __torch_function__ handling (torch._C.DisableTorchFunction, built-up names) to hide a library softmax from the run-time watch
# layer: the watch (TorchDispatchMode still sees the op) + static scan
import torch

_c = getattr(torch, "_" + "C")
_off = getattr(_c, "Disable" + "TorchFunction")
_fn = getattr(torch, "soft" + "max")


def softmax(x, dim=-1):
    with _off():
        return _fn(x, dim)
