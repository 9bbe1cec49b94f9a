# attack: sleep for a thousand seconds inside the function
# layer: host (per-call deadline and per-exercise budget)
import time


def _attack(*args, **kwargs):
    time.sleep(1000)


def __getattr__(name):
    """Every function or class the grader asks this file for is the attack."""
    if name.startswith("_"):
        raise AttributeError(name)
    return _attack
