"""What a submission reaches while it runs: forbidden helpers, and the work it does.

Runs inside the sandbox, in the submission's own process (imports only torch), and is also
used by the grader to name helpers when it reads the source (guards.py). A finding is sent
to the grader the moment it is made (see inside.py), so code that runs later cannot take it
back.
"""
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

# Fused attention, forbidden in every exercise: matched as a part of a name.
FUSED_ATTENTION = ("scaled_dot_product", "multi_head_attention", "multiheadattention",
                   "fused_sdp", "native_multi_head", "safe_softmax")   # aten._safe_softmax: sdpa's math path

# Names a test module may forbid in addition (module attribute FORBIDDEN), matched in full
# after dropping leading underscores and a "special_" prefix, so `softmax` also catches
# `torch.special.softmax`, `aten._softmax` and `Tensor.softmax`.
SOFTMAX_FAMILY = ("softmax", "log_softmax", "logsumexp", "Softmax", "LogSoftmax")
LINEAR_LAYER = ("linear", "Linear")

def _bare(name):
    name = name.lstrip("_")
    return name.removeprefix("special_").lstrip("_")


def is_forbidden(name, extra):
    """The forbidden helper that `name` (a function, op or attribute name) reaches, or None."""
    low = name.lower().replace("torch.", "")
    for part in FUSED_ATTENTION:
        if part in low.replace(".", "_"):
            return name
    bare = _bare(name.split(".")[-1] if not name.startswith("aten.") else name.split(".")[1])
    if bare in extra or bare.lower() in {e.lower() for e in extra}:
        return name
    return None



class Watch:
    """Runs in the submission's process around every call: forbidden uses and work done.

    extra: names this exercise forbids besides fused attention; numpy_only: any torch op is a
    finding (exercise 15); no_numpy: a tensor handed to NumPy is a finding (exercises in
    PyTorch, where NumPy would hide work from this watch). report(text) sends a finding out.
    """

    def __init__(self, extra, numpy_only=False, no_numpy=False, report=None):
        self.extra = tuple(extra) + (("numpy", "__array__", "from_numpy") if no_numpy else ())
        self.numpy_only = numpy_only
        self.forbidden = []
        self.report = report
        self.reset()

    def reset(self):
        self.largest = 0          # elements in the largest tensor any op produced
        self.matmul_flops = 0     # 2·m·n·k summed over every matrix product

    def note(self, what):
        if what not in self.forbidden:
            self.forbidden.append(what)
            if self.report:
                self.report(what)

    def note_name(self, name):
        hit = "torch (this exercise is NumPy only): " + name if self.numpy_only else is_forbidden(name, self.extra)
        if hit:
            self.note(hit)

    def mode(self):
        """Two watchers, entered together around the submission's code.

        A TorchFunctionMode sees every torch function, Tensor method and torch.ops call by the
        name the learner used (and counts the work done); a TorchDispatchMode sees every aten
        op that really runs, also where Python-level handling was switched off
        (torch._C.DisableTorchFunction) or the op runs below Python (TorchScript).
        """
        watch = self
        state = {"inside": 0}

        class Functions(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                name = getattr(func, "__name__", "") or str(func)
                watch.note_name(name)
                state["inside"] += 1
                try:
                    out = func(*args, **(kwargs or {}))
                finally:
                    state["inside"] -= 1
                for t in out if isinstance(out, (tuple, list)) else (out,):
                    if isinstance(t, torch.Tensor):
                        watch.largest = max(watch.largest, t.numel())
                if isinstance(out, torch.Tensor):
                    watch.matmul_flops += _matmul_flops(name, args, out)
                return out

        class Ops(TorchDispatchMode):
            @classmethod
            def _should_skip_dynamo(cls):      # (else its first use imports torch._dynamo: seconds)
                return False

            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                if not watch.forbidden:        # one finding is enough; the first is the clearest
                    watch.note_name(str(func))
                    if not state["inside"] and not torch._C._is_torch_function_enabled():
                        watch.note("torch._C.DisableTorchFunction (hides calls from the grader)")
                return func(*args, **(kwargs or {}))

        return _Together(Ops(), Functions())


class _Together:
    """Enters several context managers as one (reusable)."""

    def __init__(self, *managers):
        self.managers = managers

    def __enter__(self):
        for m in self.managers:
            m.__enter__()
        return self

    def __exit__(self, *exc):
        for m in reversed(self.managers):
            m.__exit__(*exc)
        return False


def _matmul_flops(name, args, out):
    """2·(output elements)·(inner size) for a matrix product; 0 for anything else."""
    name = name.strip("_")
    if name in ("matmul", "mm", "bmm", "rmatmul") and len(args) >= 2 and isinstance(args[0], torch.Tensor):
        a = args[1] if name == "rmatmul" else args[0]
        return 2 * out.numel() * a.shape[-1]
    if name in ("addmm", "baddbmm", "addbmm") and len(args) >= 3 and isinstance(args[1], torch.Tensor):
        return 2 * out.numel() * args[1].shape[-1]
    if name == "einsum" and args and isinstance(args[0], str):
        letters = set(args[0].split("->")[0].replace(",", "").replace(" ", ""))
        operands = args[1:] if len(args) > 2 or not isinstance(args[1], (list, tuple)) else args[1]
        sizes = {}
        for spec, t in zip(args[0].split("->")[0].split(","), operands):
            for letter, size in zip(spec.strip(), getattr(t, "shape", ())):
                sizes[letter] = size
        total = 2
        for letter in letters:
            total *= sizes.get(letter, 1)
        return total
    return 0
