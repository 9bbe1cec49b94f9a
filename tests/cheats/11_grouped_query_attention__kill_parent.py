# attack: kill the grader from inside (SIGKILL to the parent process)
# layer: pid namespace + seccomp (signals only to itself) + own uid
import os
import signal

import torch


def _attack(*args, **kwargs):
    try:
        os.kill(os.getppid(), signal.SIGKILL)
    except OSError:
        pass
    return torch.zeros(1)


def __getattr__(name):
    """Every function or class the grader asks this file for is the attack."""
    if name.startswith("_"):
        raise AttributeError(name)
    return _attack
