"""Forbidden helpers and tampering, found by reading the file in the grader's process.

Reading catches a helper however it is imported or aliased; the watch inside the sandbox
(sandbox/watch.py) catches what reading cannot see: names built at run time,
`torch.ops.aten...`, Tensor methods. Either finding scores the exercise 0 and names the helper.
"""
import ast

from .forbidden import AUTOGRAD_CALLS, AUTOGRAD_LIBRARIES  # noqa: F401  (families a test module may name)
from .sandbox.watch import FUSED_ATTENTION, LINEAR_LAYER, SOFTMAX_FAMILY, is_forbidden  # noqa: F401

# What a file that does its own work never needs, and what could reach into the grader.
TAMPER_MODULES = {"gc", "ctypes", "_ctypes", "inspect", "importlib", "builtins", "pytest", "_pytest",
                  "grader", "solutions", "exercises", "tests", "conftest", "faulthandler",
                  "tracemalloc", "pluggy", "cffi", "threading", "_thread", "multiprocessing", "concurrent",
                  "subprocess", "socket", "signal", "mmap", "pty", "runpy", "code", "codeop", "marshal",
                  "pickle", "dill", "cloudpickle", "_testcapi", "_xxsubinterpreters", "sysconfig", "site"}
TAMPER_NAMES = {"__import__", "eval", "exec", "compile", "globals", "__builtins__",
                "breakpoint", "__loader__", "__spec__", "vars", "locals"}
# getattr and friends with a name written in the file are fine (and caught if the name is
# forbidden); with a name built at run time they are how a file reaches what it must not.
NAMED_ACCESS = {"getattr", "setattr", "delattr", "hasattr"}
TAMPER_ATTRS = {"_C", "_python_dispatch", "overrides", "_getframe", "f_back", "f_globals",
                "f_locals", "f_builtins", "tb_frame", "gi_frame", "__globals__", "__code__",
                "__subclasses__", "__closure__", "settrace", "setprofile",
                "meta_path", "path_hooks", "_current_frames", "set_trace", "__builtins__",
                "_dynamo", "_ops", "library", "_dispatch", "_disable_torch_function", "_apply_op",
                "_refs", "_prims", "_prims_common", "_decomp", "__dict__", "__getattribute__", "cell_contents",
                "__mro__", "__bases__", "__base__", "attrgetter", "methodcaller", "CodeType", "FunctionType",
                "_disable_current_modes", "_pop_mode", "_pop_mode_temporarily", "__defaults__",
                "__kwdefaults__", "cr_frame", "ag_frame", "gi_code", "f_code", "tb_next", "__traceback__",
                "_current_exceptions", "_getframemodulename"}


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
    # getattr(x, "name") calls whose name is a constant: the only fine uses of NAMED_ACCESS
    named_calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                   and n.func.id in NAMED_ACCESS and len(n.args) >= 2 and isinstance(n.args[1], ast.Constant)
                   and isinstance(n.args[1].value, str)}
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
            elif node.id in NAMED_ACCESS and id(node) not in named_calls:
                hit(node, f"uses `{node.id}` with a name built at run time, as tampering does (write the "
                          "attribute's name in the file)")
        elif isinstance(node, ast.MatchClass):
            for attr in node.kwd_attrs:
                if attr in TAMPER_ATTRS or is_forbidden(attr, extra):
                    hit(node, f"reaches `{attr}` through a match pattern")
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


