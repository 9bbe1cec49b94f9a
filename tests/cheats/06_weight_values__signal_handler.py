# attack: a timer signal whose Python handler computes the result: it runs between any two bytecodes, also inside the watch's handlers and while the harness replies
# layer: a Python signal handler from the submission is refused (signal.signal) + static scan
# expect: signal
# runtime: signal handler
import signal

import torch

_stash = {}


def _tick(signum, frame):
    p, v = _stash.get("p"), _stash.get("v")
    if p is not None:
        _stash["out"] = torch.matmul(p, v)


signal.signal(signal.SIGALRM, _tick)


def weight_values(probs, v):
    _stash.update(p=probs, v=v)
    signal.setitimer(signal.ITIMER_REAL, 0.001)
    while "out" not in _stash:
        probs + 0
    return _stash.pop("out")
