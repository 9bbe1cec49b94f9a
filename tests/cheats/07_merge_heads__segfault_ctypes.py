# attack: a segmentation fault by reading address 0 with ctypes.string_at (caught by reading the file, and refused at run time)
# layer: static scan (ctypes) + the audit hook
import ctypes


def _attack(*args, **kwargs):
    return ctypes.string_at(0)


def __getattr__(name):
    """Every function or class the grader asks this file for is the attack."""
    if name.startswith("_"):
        raise AttributeError(name)
    return _attack
