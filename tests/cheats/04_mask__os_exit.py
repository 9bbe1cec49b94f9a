# attack: os._exit(0) inside the function, ending the process without unwinding
# layer: host (the child's end is a crash of that exercise only)
import os


def _attack(*args, **kwargs):
    os._exit(0)


def __getattr__(name):
    """Every function or class the grader asks this file for is the attack."""
    if name.startswith("_"):
        raise AttributeError(name)
    return _attack
