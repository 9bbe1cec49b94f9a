# attack: reach torch at run time in the NumPy-only exercise (through numpy's own import of it, not an import statement)
# layer: the watch (in exercise 15 any torch op is a finding) + static scan
# expect: NumPy only
# runtime: NumPy only
import numpy as np
import sys

_torch = sys.modules.get("tor" + "ch")


def attention_forward(q, k, v, causal=False):
    tq, tk, tv = (_torch.tensor(a, requires_grad=True) for a in (q, k, v))
    out = _torch.softmax(tq @ tk.transpose(-2, -1) / np.sqrt(q.shape[-1]), -1) @ tv
    return out.detach().numpy(), (tq, tk, tv, out)


def attention_backward(dout, cache):
    tq, tk, tv, out = cache
    out.backward(_torch.tensor(dout))
    return tq.grad.numpy(), tk.grad.numpy(), tv.grad.numpy()
