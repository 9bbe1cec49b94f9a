"""What an exercise forbids, in the words its stub says it ("Forbidden in this file: ...").

A test module names what its exercise forbids beside fused attention: `FORBIDDEN`, helper names,
and `FORBIDDEN_IMPORTS`, modules (without one, a PyTorch exercise may not import NumPy). Each is a
family named here or in guards.py, or a literal tuple of names. The stub's paragraphs are derived
from them (`python -m grader.course sync`), so the rule and what the learner reads cannot drift.

Imports nothing: the study tools and the course tools read exercises without torch. The softmax
and linear families' names live in sandbox/watch.py, which the sandbox imports alone.
"""

# Automatic differentiation, for the NumPy exercise: its names, and the libraries that do it.
AUTOGRAD_CALLS = ("autograd", "backward", "vjp", "value_and_grad", "GradientTape", "requires_grad",
                  "requires_grad_", "jacrev", "jacfwd")
AUTOGRAD_LIBRARIES = ("autograd", "chainer", "cupy", "dezero", "flax", "functorch", "jax", "jaxlib", "keras",
                      "lightning", "micrograd", "mindspore", "mlx", "mxnet", "oneflow", "paddle", "pytensor",
                      "pytorch", "pytorch_lightning", "tangent", "tensorflow", "tf", "theano", "tinygrad", "torch")

# Each family a test module may name, as the learner reads it.
FAMILIES = {
    "SOFTMAX_FAMILY": "every library softmax, log-softmax and logsumexp (torch.softmax, "
                      "torch.nn.functional.softmax, Tensor.softmax, nn.Softmax, torch.special.*, "
                      "torch.logsumexp, ...).",
    "LINEAR_LAYER": "torch.nn.functional.linear and torch.nn.Linear - write the matmul.",
    "AUTOGRAD_CALLS": "automatic differentiation by any route (autograd, backward, vjp, requires_grad, "
                      "jacrev, ...): write the backward pass yourself.",
    "AUTOGRAD_LIBRARIES": "importing torch or any other deep-learning or automatic-differentiation library "
                          "(jax, tensorflow, autograd, ...): this file imports NumPy and the standard "
                          "library only.",
}
NO_NUMPY = ("NumPy (import torch and the standard library only): work done in NumPy is hidden from the "
            "grader's checks, so a file that uses it scores 0, and the report says so.")
PYTORCH_ONLY = ("numpy",)      # what a PyTorch exercise may not import unless its test module says otherwise


def describe(part):
    """One sentence for one part of a FORBIDDEN or FORBIDDEN_IMPORTS value: a family's name, or
    ("names", (...)) / ("imports", (...)) for a literal tuple."""
    if isinstance(part, str):
        return FAMILIES[part]
    kind, names = part
    listed = ", ".join(names)
    return f"the helpers {listed}, however spelled." if kind == "names" else f"importing {listed}."
