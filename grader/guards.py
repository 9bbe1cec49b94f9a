"""Forbidden helpers and tampering: found by reading the file, and watched for while it runs.

Reading (in the grader's process) catches a helper however it is imported or aliased;
watching (in the submission's process, with a TorchFunctionMode)
catches what reading cannot see: names built at run time, `torch.ops.aten...`, Tensor
methods. Either finding scores the exercise 0 and names the helper.
"""
import ast

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

# What a file that does its own work never needs, and what could reach into the grader.
TAMPER_MODULES = {"gc", "ctypes", "inspect", "importlib", "builtins", "pytest", "_pytest",
                  "grader", "solutions", "exercises", "tests", "conftest", "faulthandler",
                  "tracemalloc", "pluggy", "cffi"}
TAMPER_NAMES = {"__import__", "eval", "exec", "compile", "globals", "__builtins__",
                "breakpoint", "__loader__", "__spec__"}
TAMPER_ATTRS = {"_C", "_python_dispatch", "overrides", "_getframe", "f_back", "f_globals",
                "f_locals", "f_builtins", "tb_frame", "gi_frame", "__globals__", "__code__",
                "__subclasses__", "__closure__", "settrace", "setprofile",
                "meta_path", "path_hooks", "_current_frames", "set_trace", "__builtins__",
                "_dynamo", "_ops", "library", "_dispatch", "_disable_torch_function", "_apply_op"}


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


def scan_source(source, extra=(), imports=()):
    """Static findings: a list of (line, message). An unparsable file yields nothing here.

    extra: helper names this exercise forbids; imports: modules it may not import at all.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    docstrings = {id(n.value) for n in ast.walk(tree)
                  if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    found = []

    def hit(node, what):
        found.append((getattr(node, "lineno", 0), what))

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if is_forbidden(node.attr, extra):
                hit(node, f"uses the forbidden helper `{ast.unparse(node)}`")
            elif node.attr in TAMPER_ATTRS or node.attr == "modules" and _root_name(node) == "sys":
                hit(node, f"reaches into the interpreter or PyTorch internals (`{ast.unparse(node)}`)")
        elif isinstance(node, ast.Name):
            if node.id in TAMPER_NAMES:
                hit(node, f"uses `{node.id}`, which an exercise never needs and which could tamper with grading")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for m in modules:
                if m.split(".")[0] in imports:
                    hit(node, f"imports `{m}`, which this exercise forbids: do it by hand")
                elif m.split(".")[0] in TAMPER_MODULES or node.__class__ is ast.ImportFrom and node.level:
                    hit(node, f"imports `{m or '.'}`: an exercise imports only the standard library, torch and numpy")
                elif any(part in TAMPER_ATTRS for part in m.split(".")):
                    hit(node, f"imports `{m}`, PyTorch internals that could tamper with grading")
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
                for a in node.names:
                    if is_forbidden(a.name, extra):
                        hit(node, f"imports the forbidden helper `{a.name}` from `{node.module}`")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            # Only a string that is a bare name or dotted path, as getattr or an import would use
            # it: prose in an error message ("online softmax") is fine.
            text = node.value.strip()
            if text and " " not in text:
                for word in text.replace(":", ".").split("."):
                    if is_forbidden(word, extra) or word in TAMPER_ATTRS - {"library", "overrides"}:
                        hit(node, f"names `{word}` in a string (as `getattr` would use it)")
                        break
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for t in targets:
                if isinstance(t, ast.Attribute) and _root_name(t) in {"torch", "np", "numpy", "F", "nn"}:
                    hit(node, f"assigns to `{ast.unparse(t)}`: patching a library is tampering")
    return sorted(set(found))


def _root_name(node):
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


class Watch:
    """Runs in the submission's process around every call: forbidden uses and work done."""

    def __init__(self, extra):
        self.extra = tuple(extra)
        self.forbidden = []
        self.reset()

    def reset(self):
        self.largest = 0          # elements in the largest tensor any op produced
        self.matmul_flops = 0     # 2·m·n·k summed over every matrix product

    def note_name(self, name):
        hit = is_forbidden(name, self.extra)
        if hit and hit not in self.forbidden:
            self.forbidden.append(hit)

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
                        watch.forbidden.append("torch._C.DisableTorchFunction (hides calls from the grader)")
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
