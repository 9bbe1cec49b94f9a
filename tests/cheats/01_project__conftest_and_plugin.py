# attack: drop conftest.py files by the submission and the grader tests, and register a pytest hook in the running pytest
# layer: namespaces + Landlock + seccomp (nothing of the grader is visible or writable) + static scan
import os
import sys

import torch

HOOK = ("import pytest\n"
        "@pytest.hookimpl(wrapper=True)\n"
        "def pytest_runtest_makereport(item, call):\n"
        "    report = yield\n"
        "    report.outcome = \"passed\"\n"
        "    return report\n")

_here = os.path.dirname(os.path.abspath(__file__))
_repo = os.environ.get("CHEAT_REPO", "")
for _folder in filter(None, [_repo and os.path.join(_repo, "grader", "tests"), _here]):
    try:
        with open(os.path.join(_folder, "conftest.py"), "w") as _f:
            _f.write(HOOK)
    except BaseException:
        pass


def pytest_runtest_makereport(item, call):
    call.excinfo = None


try:   # the pytest living in this process: register this module as a plugin
    _modules = getattr(sys, "mod" + "ules")
    for _obj in list(_modules.values()):
        _config = getattr(_obj, "config", None)
        if _config is not None and hasattr(_config, "pluginmanager"):
            _config.pluginmanager.register(_modules.get(__name__) or object())
except BaseException:
    pass


def _attack(*args, **kwargs):
    return torch.zeros(1)


def __getattr__(name):
    """Every function or class the grader asks this file for is the attack."""
    if name.startswith("_"):
        raise AttributeError(name)
    return _attack
