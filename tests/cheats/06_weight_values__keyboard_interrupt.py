# attack: raise KeyboardInterrupt inside the function, as if Ctrl-C had been pressed
# layer: host (reported as the exercise raising)
def _attack(*args, **kwargs):
    raise KeyboardInterrupt


def __getattr__(name):
    """Every function or class the grader asks this file for is the attack."""
    if name.startswith("_"):
        raise AttributeError(name)
    return _attack
