# attack: leave a subprocess and a forked grandchild running that hold every inherited file descriptor (pipes included)
# layer: seccomp (no fork or exec) + RLIMIT_NPROC + static scan
import os
import subprocess
import time

import torch


def _attack(*args, **kwargs):
    try:
        subprocess.Popen(["sleep", "30"], close_fds=False, start_new_session=True)
    except BaseException:
        pass
    if os.fork() == 0:
        os.setsid()
        time.sleep(30)
        os._exit(0)
    return torch.zeros(1)


def __getattr__(name):
    """Every function or class the grader asks this file for is the attack."""
    if name.startswith("_"):
        raise AttributeError(name)
    return _attack
