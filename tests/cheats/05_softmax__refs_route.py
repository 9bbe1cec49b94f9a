# attack: use the Python reference implementation of softmax in torch._refs (and the decomposition table), which runs as plain ops
# layer: the harness poisons forbidden helpers in torch._refs, torch._prims and torch._decomp + static scan
# expect: _refs
# runtime: _refs
import torch


def softmax(x, dim=-1):
    refs = getattr(torch, "_refs")
    return refs.softmax(x, dim)
