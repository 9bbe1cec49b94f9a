# attack: scan every live object (gc, reached through sys.modules by a built-up name) for the oracle or expected tensors
# layer: a separate interpreter (nothing of the grader to find) + the audit hook (gc) + static scan
# runtime: gc
import sys

import torch

_gc = getattr(sys, "mod" + "ules")["g" + "c"]


def _attack(*args, **kwargs):
    for obj in getattr(_gc, "get_" + "objects")():
        if callable(obj) and getattr(obj, "__name__", "").startswith("oracle"):
            try:
                return obj(*args, **kwargs)
            except Exception:
                continue
    return torch.zeros(1)


def __getattr__(name):
    """Every function or class the grader asks this file for is the attack."""
    if name.startswith("_"):
        raise AttributeError(name)
    return _attack
