# attack: import the grader, the reference or another exercise (importlib, built-up names) and return what they compute
# layer: a separate interpreter (no grader module) + the import blocker + static scan
import sys

_modules = getattr(sys, "mod" + "ules")
_importlib = _modules["import" + "lib"]


def _attack(*args, **kwargs):
    for name in ("sol" + "utions.03_scores", "gra" + "der.tests.test_03_scores", "exer" + "cises.03_scores",
                 "exercise_05_softmax"):
        try:
            module = _importlib.import_module(name)
            return getattr(module, "attention_scores", None) or getattr(module, "oracle")(*args, **kwargs)
        except BaseException:
            pass
    for name, module in list(_modules.items()):
        if name.startswith(("gra" + "der", "sol" + "utions")) and hasattr(module, "oracle"):
            return module.oracle(*args, **kwargs)
    raise ImportError("nothing to copy")


def __getattr__(name):
    """Every function or class the grader asks this file for is the attack."""
    if name.startswith("_"):
        raise AttributeError(name)
    return _attack
