"""Public tests for exercise 15 (shapes and a few equivalence checks). The full grade runs the
course's hidden tests, in GitHub Classroom or Gradescope."""
import numpy as np
import torch

from grader.checks import close, fail, graded, rules_respected
from grader.guards import AUTOGRAD_CALLS, AUTOGRAD_LIBRARIES

FORBIDDEN = AUTOGRAD_CALLS
FORBIDDEN_IMPORTS = AUTOGRAD_LIBRARIES


def forward_backward(module, q, k, v, dout):
    out, cache = module.attention_forward(q, k, v)
    return (out, *module.attention_backward(dout, cache))


def autograd(q, k, v, dout):
    q, k, v = (torch.from_numpy(t).requires_grad_() for t in (q, k, v))
    out = torch.softmax(q @ k.mT / q.shape[-1] ** 0.5, dim=-1) @ v
    return (out.detach(), *torch.autograd.grad((out * torch.from_numpy(dout)).sum(), (q, k, v)))


def draw(rng, *shape_q, S=5, dv=3):
    g = np.random.default_rng(int(torch.randint(0, 2 ** 31, (1,), generator=rng)))
    q = g.standard_normal(shape_q)
    k = g.standard_normal(shape_q[:-2] + (S, shape_q[-1]))
    v = g.standard_normal(shape_q[:-2] + (S, dv))
    return q, k, v, g.standard_normal(shape_q[:-1] + (dv,))


@graded("shapes", 1)
def test_shapes(ex, rng):
    """dq, dk, dv are shaped like q, k, v"""
    q, k, v, dout = draw(rng, 2, 4, 6)
    got = ex.run(forward_backward, q, k, v, dout)
    for name, g, x in zip(("out", "dq", "dk", "dv"), got, (dout, q, k, v)):
        if not isinstance(g, np.ndarray) or g.shape != x.shape:
            fail(f"{name}: expected an array of shape {x.shape}, got {type(g).__name__} {getattr(g, 'shape', '')}")


@graded("equivalence", 2)
def test_matches_autograd(ex, rng):
    """the gradients match torch.autograd's in float64"""
    q, k, v, dout = draw(rng, 2, 4, 6)
    got = ex.run(forward_backward, q, k, v, dout)
    for i, (g, want) in enumerate(zip(got, autograd(q, k, v, dout))):
        close(torch.from_numpy(np.asarray(g)) if isinstance(g, np.ndarray) else g, want, ex, part=i)


@graded("rules", 0.5)
def test_rules(ex, rng):
    """uses NumPy alone: no torch, no autograd library"""
    ex.run(forward_backward, *draw(rng, 1, 2, 2, S=2, dv=2))
    rules_respected(ex)
