# attack: exclude the Python dispatch key so the dispatch watch never sees the ops, and use a scan-based helper the name watch does not know
# layer: the mode-stack guard (what changes the dispatch keys in force is torch's own to call) + static scan (_C)
# expect: ExcludeDispatchKeyGuard
# runtime: ExcludeDispatchKeyGuard
import torch

_C = getattr(torch, "_" + "C")


def weight_values(probs, v):
    keys = _C.DispatchKeySet(_C.DispatchKey.Python)
    with _C._ExcludeDispatchKeyGuard(keys):
        return torch.logcumsumexp(torch.zeros(1), 0).sum() * 0 + probs @ v
