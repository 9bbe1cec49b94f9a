# attack: replace torch.allclose, torch.equal, torch.testing.assert_close, numpy.allclose and Tensor.__eq__ so every comparison passes
# layer: a separate interpreter (the grader compares in its own process) + static scan
import numpy
import torch

_T, _N = torch, numpy
setattr(_T, "all" + "close", lambda *a, **k: True)
setattr(_T, "eq" + "ual", lambda *a, **k: True)
setattr(_T.testing, "assert" + "_close", lambda *a, **k: None)
setattr(_N, "all" + "close", lambda *a, **k: True)
setattr(_T.Tensor, "__e" + "q__", lambda self, other: True)


def softmax(x, dim=-1):
    return torch.zeros_like(x)
