# attack: raise its own memory and CPU limits back to unlimited, then allocate far too much
# layer: rlimits (hard limits cannot be raised) + seccomp (prlimit on others)
import resource

import torch


def merge_heads(x):
    for which in (resource.RLIMIT_AS, resource.RLIMIT_CPU, resource.RLIMIT_NPROC):
        try:
            resource.setrlimit(which, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        except (ValueError, OSError):
            pass
    hog = torch.ones(4_000_000_000, dtype=torch.uint8)
    return hog
