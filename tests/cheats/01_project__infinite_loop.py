# attack: loop forever inside the function
# layer: host (per-call deadline, then the child is killed)
def _attack(*args, **kwargs):
    while True:
        pass


def __getattr__(name):
    """Every function or class the grader asks this file for is the attack."""
    if name.startswith("_"):
        raise AttributeError(name)
    return _attack
