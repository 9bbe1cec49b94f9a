# attack: switch off __torch_function__ handling (torch._C.DisableTorchFunction, built-up names) to hide a library softmax from the run-time watch
# layer: the mode-stack guard (refuses the submission switching torch function handling off) + the watch (TorchDispatchMode) + static scan
# runtime: DisableTorchFunction
import torch

_c = getattr(torch, "_" + "C")
_off = getattr(_c, "Disable" + "TorchFunction")
_fn = getattr(torch, "soft" + "max")


def softmax(x, dim=-1):
    with _off():
        return _fn(x, dim)
