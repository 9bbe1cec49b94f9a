# attack: sys.exit(0) inside the function, hoping a clean exit reads as success
# layer: host (the child's end is a crash of that exercise only)
import sys


def _attack(*args, **kwargs):
    sys.exit(0)


def __getattr__(name):
    """Every function or class the grader asks this file for is the attack."""
    if name.startswith("_"):
        raise AttributeError(name)
    return _attack
