# attack: write garbage to every open file descriptor (the result pipe included), then close stdout and stderr
# layer: wire (framed, token-checked replies) + the child holds only its own descriptors
import os

import torch


def _attack(*args, **kwargs):
    for fd in range(3, 256):
        try:
            os.write(fd, b"\x00\xff" * 64 + b"R" * 64)
        except OSError:
            pass
    for fd in (1, 2):
        try:
            os.close(fd)
        except OSError:
            pass
    return torch.zeros(1)


def __getattr__(name):
    """Every function or class the grader asks this file for is the attack."""
    if name.startswith("_"):
        raise AttributeError(name)
    return _attack
