# attack: walk the call stack (sys._getframe by a built-up name) to read the expected values or call the oracle
# layer: the audit hook (sys._getframe from the submission) + a separate interpreter: there is no expected value to find
# runtime: _getframe
import sys

import torch

_get = getattr(sys, "_get" + "frame")


def _attack(*args, **kwargs):
    frame = _get(0)
    while frame is not None:
        for scope in (getattr(frame, "f_" + "locals"), getattr(frame, "f_" + "globals")):
            for key, value in list(scope.items()):
                if key.startswith(("oracle", "expected")):
                    return value(*args, **kwargs) if callable(value) else value
        frame = getattr(frame, "f_" + "back")
    return torch.zeros(1)


def __getattr__(name):
    """Every function or class the grader asks this file for is the attack."""
    if name.startswith("_"):
        raise AttributeError(name)
    return _attack
