# attack: append code to the grader's hidden tests, checks, the reference and a conftest.py, at import and in every call
# layer: namespaces (read-only view) + Landlock + seccomp (no opening for write) + static scan
import os

import torch

_REPO = os.environ.get("CHEAT_REPO", "")
_TARGETS = ("grader/tests/test_02_split_heads.py", "grader/tests/test_09_scaled_dot_product_attention.py",
            "grader/checks.py", "solutions/09_scaled_dot_product_attention.py", "grader/tests/conftest.py")


def _write():
    for rel in _TARGETS if _REPO else ():
        try:
            with open(os.path.join(_REPO, rel), "a") as f:
                f.write("\nraise SystemExit(0)\n")
        except BaseException:
            pass


_write()


def _attack(*args, **kwargs):
    _write()
    return torch.zeros(1)


def __getattr__(name):
    """Every function or class the grader asks this file for is the attack."""
    if name.startswith("_"):
        raise AttributeError(name)
    return _attack
