# attack: cyclic garbage whose finaliser computes the library softmax, with the collector's count set so that it runs inside the dispatch watch's own handler, where torch has set the watch aside
# layer: the collector runs only when the harness collects, inside the watch (a finaliser runs watched; gc.enable and set_threshold are refused) + static scan
# expect: softmax
# runtime: softmax
import gc

import torch

_stash = {}
_keep = []


class _Later:
    def __init__(self):
        self.me = self

    def __del__(self):
        x = _stash.get("x")
        if x is not None and "y" not in _stash:
            _stash["y"] = torch.softmax(x.float(), -1).to(x.dtype)


def softmax(x, dim=-1):
    _stash.clear()
    _stash["x"] = x.movedim(dim, -1)
    t = x.new_zeros(1)
    for k in range(2000):
        if "y" in _stash:
            break
        _Later()
        room = gc.get_threshold()[0] - gc.get_count()[0] - 1 - k % 12
        _keep.extend([] for _ in range(max(room, 0)))
        t = t + 0
    return _stash.pop("y").movedim(-1, dim)
