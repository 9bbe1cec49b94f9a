# attack: a segmentation fault the file reader cannot see (SIGSEGV sent to itself)
# layer: host (the child's death is a crash of that exercise only)
import os
import signal


def _attack(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGSEGV)


def __getattr__(name):
    """Every function or class the grader asks this file for is the attack."""
    if name.startswith("_"):
        raise AttributeError(name)
    return _attack
