# attack: a huge allocation (torch.empty of 10**12 floats), then a list that grows without bound
# layer: rlimits (RLIMIT_AS)
import torch


def _attack(*args, **kwargs):
    try:
        torch.empty(10 ** 12)
    except RuntimeError:
        pass
    hoard = []
    while True:
        hoard.append(b"x" * (64 << 20))


def __getattr__(name):
    """Every function or class the grader asks this file for is the attack."""
    if name.startswith("_"):
        raise AttributeError(name)
    return _attack
