"""The Python-level fences inside a sandbox child, put up before the submission's code runs.

They sit on top of lockdown.py's operating-system layers and guard the watch (watch.py) from the
submission it watches: the library routes to forbidden helpers are poisoned, the watch's modes
cannot be popped off torch's mode stack, threads are refused, and an audit hook refuses
processes, signals, sockets, writes, reads outside Python's folders, frames, gc and ctypes.
Each refusal is a finding. Runs in the sandbox: standard library and torch only.
"""
import json
import operator
import os
import signal
import struct
import sys

import numpy
import torch

import watch as watching

# Harness code: its builtins are a copy taken before any submission runs (one it replaced in the
# builtins module is not what this module calls).
__builtins__ = dict(vars(__import__("builtins")))

FRAME_HOLDERS = {"tb_frame", "gi_frame", "cr_frame", "ag_frame"}      # how Python code reaches a frame
FRAME_ATTRS = FRAME_HOLDERS | {"f_code", "gi_code", "cr_code", "ag_code", "__code__"}

class GuardedMode:
    """The watch's torch modes, entered by the harness (no submission frame on the stack, so the
    mode-stack guard lets it by), and checked after each call: still in place, on top."""

    def __init__(self, together):
        self.together = together
        self.function_len = torch._C._len_torch_function_stack
        self.dispatch_len = torch._C._len_torch_dispatch_stack
        self.function_at = torch._C._get_function_stack_at
        self.dispatch_at = torch._C._get_dispatch_stack_at
        self.broken = False

    def __enter__(self):
        self.together.__enter__()
        return self

    def __exit__(self, *exc):
        ops, functions = self.together.managers
        self.broken = not (self.function_len() and self.function_at(self.function_len() - 1) is functions
                           and self.dispatch_len() and self.dispatch_at(self.dispatch_len() - 1) is ops)
        if not self.broken:
            self.together.__exit__(*exc)
        return False

    def check(self, watch):
        if self.broken:
            watch.note("the grader's watch taken off torch's mode stack (tampering)")
            raise RuntimeError("the grader's watch was taken off torch's mode stack")


def poison_library_routes(watch):
    """torch._refs, torch._prims and torch._decomp hold Python versions of the forbidden helpers,
    which run as ops the watch would not name: each becomes a refusal that names it."""
    def poisoned(name):
        def refuse(*args, **kwargs):
            watch.note(name)
            raise RuntimeError(f"the grader does not allow `{name}` here")
        return refuse

    for modname, module, attr, key, name in library_routes():
        if watching.is_forbidden(name, watch.extra):
            if key is None:
                setattr(module, attr, poisoned(f"{modname}.{attr}"))
            else:
                vars(module)[attr][key] = poisoned(f"{modname}.{attr}[{key}]")


def library_routes():
    """(module name, module, attribute, key in a decomposition table or None, name) for every
    function of torch._refs, torch._prims and torch._decomp (the zygote reads their names once:
    inside.py)."""
    for modname, module in list(sys.modules.items()):
        if not modname.startswith(("torch._refs", "torch._prims", "torch._decomp")) or module is None:
            continue
        for attr, value in list(vars(module).items()):
            if callable(value) and not isinstance(value, type):
                yield modname, module, attr, None, attr
            elif isinstance(value, dict) and "decomposition" in attr:
                for key in list(value):
                    yield modname, module, attr, key, str(key)


def guard_mode_stack(watch, filename):
    """Taking the watch's modes off torch's mode stack (popping them, reading them, disabling
    current modes) is refused unless torch's own code or the harness asks for it: torch does it
    all the time (to call a mode's handler). The asker is the first frame outside the modules that
    only pass such calls on; anything else (the submission, or a probe calling a C function the
    submission put in its place) is refused."""
    torch_dir = os.path.dirname(torch.__file__) + os.sep
    passthrough = (os.path.abspath(__file__), os.path.join(torch_dir, "overrides.py"),
                   os.path.join(torch_dir, "utils", "_python_dispatch.py"), _contextlib_file())
    getframe = sys._getframe

    harness_dir = HARNESS_DIR

    def asked_by_submission():
        f = getframe(2)
        while f is not None and f.f_code.co_filename in passthrough:
            f = f.f_back
        return f is None or not f.f_code.co_filename.startswith((torch_dir, harness_dir))

    def guarded(name, original):
        def call(*args, **kwargs):
            if asked_by_submission():
                watch.note(f"{name} (taking the grader's watch off: tampering)")
                raise RuntimeError("the grader does not allow this: its watch stays on")
            return original(*args, **kwargs)
        return call

    homes = [torch._C, sys.modules["torch.overrides"], sys.modules["torch.utils._python_dispatch"]]
    names = ("_pop_torch_function_stack", "_pop_torch_dispatch_stack", "_get_function_stack_at",
             "_get_dispatch_stack_at", "_unset_dispatch_mode", "_set_dispatch_mode",
             "_disable_current_modes", "_pop_mode", "_pop_mode_temporarily", "_DisableTorchDispatch",
             "DisableTorchFunction", "_len_torch_function_stack", "_len_torch_dispatch_stack",
             # what changes which dispatch keys run: excluding the Python key skips the watch altogether
             "_ExcludeDispatchKeyGuard", "ExcludeDispatchKeyGuard", "_SetExcludeDispatchKeyGuard",
             "_IncludeDispatchKeyGuard", "_ForceDispatchKeyGuard", "_PreserveDispatchKeyGuard",
             "_dispatch_tls_set_dispatch_key_excluded", "_dispatch_tls_set_dispatch_key_included",
             "_AutoDispatchBelowAutograd", "_AutoDispatchBelowADInplaceOrView", "_DisablePythonDispatcher",
             "_EnablePythonDispatcher", "_EnablePreDispatch", "_RestorePythonTLSSnapshot", "_set_torch_function_state",
             "_set_skip_next_torch_function", "_skip_one_hop_torch_function", "_set_meta_in_tls_dispatch_include",
             "DisableTorchFunctionSubclass")
    for name in names:
        originals = {id(getattr(h, name)): getattr(h, name) for h in homes if hasattr(h, name)}
        wrappers = {key: guarded(name, original) for key, original in originals.items()}
        for home in homes:
            if id(getattr(home, name, None)) in wrappers:
                setattr(home, name, wrappers[id(getattr(home, name))])


def guard_registrations(watch, filename):
    """The dispatcher's kernels are torch's, fixed before the submission runs: registering one (an
    aten op's kernel replaced, a fallback, a new operator) while the submission's code is on the
    stack is refused, however it is reached (torch.library, a library object torch made at import,
    the C handle): such a kernel would run below the watch. A kernel torch registers while it
    imports a module lazily is not the submission's doing (the walk stops at the import machinery,
    as the audit hook's does)."""
    getframe = sys._getframe

    def guarded(name, original):
        def call(*args, **kwargs):
            if submission_at_or_below(getframe(1), filename):
                watch.note(f"torch._C.{name} (registering a kernel with torch's dispatcher: tampering)")
                raise RuntimeError("the grader does not allow this: registering a kernel with torch's dispatcher")
            return original(*args, **kwargs)
        return call

    handle = torch._C._DispatchModule
    for name, method in list(vars(handle).items()):
        if not name.startswith("_") and callable(method):      # impl, define, fallback, def_, reset...
            setattr(handle, name, guarded(f"_DispatchModule.{name}", method))


def _contextlib_file():
    import contextlib
    return os.path.abspath(contextlib.__file__)


def refuse_threads(watch):
    """A thread would run the submission's code where the watch does not look (and seccomp
    refuses the clone anyway): starting one is refused and named."""
    import _thread
    import threading

    def refuse(*args, **kwargs):
        watch.note("a thread started by your code (refused: the grader cannot watch it)")
        raise RuntimeError("the grader does not allow this: can't start new thread")

    for home, name in ((_thread, "start_new_thread"), (_thread, "start_joinable_thread"),
                       (threading, "_start_new_thread"), (threading, "_start_joinable_thread")):
        if hasattr(home, name):
            setattr(home, name, refuse)


def refuse_async_entries(watch, filename):
    """The submission's code runs only inside the watch, when the harness calls it. Whatever would
    run it at another moment (while torch has set a watch aside inside its handler, or while the
    harness replies) is refused from the submission: a Python signal handler, and switching the
    collector back on (the harness keeps it off and collects inside the watch: inside.py)."""
    import _signal
    import gc
    getframe = sys._getframe

    def guarded(what, original):
        def call(*args, **kwargs):
            if submission_at_or_below(getframe(1), filename):
                watch.note(f"{what} (code that would run outside the watch: tampering)")
                raise RuntimeError(f"the grader does not allow this: {what}")
            return original(*args, **kwargs)
        return call

    def handler_guard(original):
        def call(signum, handler):
            if callable(handler) and submission_at_or_below(getframe(1), filename):
                watch.note("signal.signal with a Python handler (code that would run outside the watch: tampering)")
                raise RuntimeError("the grader does not allow this: a Python signal handler")
            return original(signum, handler)
        return call

    for home in (signal, _signal):
        home.signal = handler_guard(home.signal)
    for name in ("enable", "set_threshold", "unfreeze"):
        setattr(gc, name, guarded(f"gc.{name}", getattr(gc, name)))


_PROCESS_EVENTS = {"os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec", "os.system",
                   "subprocess.Popen", "pty.spawn", "_thread.start_new_thread", "os.kill", "os.killpg",
                   "signal.pthread_kill", "os.pidfd_open", "socket.__new__", "socket.socket"}
_SPYING_EVENTS = {"gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames",
                  "sys.addaudithook", "sys.remote_exec", "code.__new__", "function.__new__", "builtins.breakpoint",
                  "sys.monitoring.register_callback", "sys.monitoring.use_tool_id"}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def install_audit(filename, watch, readable, tracing):
    """Python's audit hooks see what the operating system's layers may not be there to stop on
    every machine: processes, signals, writing or reading files outside Python, frames, gc,
    ctypes, tracing, patching torch's or NumPy's classes. Each is refused and scored as tampering.
    Not a sandbox by itself (CPython says so): a layer on top of lockdown.py's.

    Whose doing an event is, is read from the whole stack: any frame of the submission's code (or
    of code compiled at run time) anywhere below makes it the submission's, however the call was
    laundered (logging, contextlib, weakref, a C function bound in its place). There is no flag to
    switch the hook off: the harness is recognised by having no such frame on the stack. Patching
    torch's, NumPy's or Python's own classes is refused whoever asks (a weakref callback or a
    finaliser runs with no submission frame on the stack). `tracing` is a one-item list the harness
    sets for the narration call alone, the only call that may trace (in a child that grades nothing
    after it)."""
    me = os.getpid()
    getframe = sys._getframe
    readable = tuple(os.path.realpath(p).rstrip("/") + ("/" if os.path.isdir(p) else "") for p in readable)
    module_of = type.__dict__["__module__"].__get__
    inside = []        # re-entry: what the hook itself does is not audited again

    def refuse(what, exc=PermissionError):
        watch.note(f"{what} (tampering)")
        raise exc(f"the grader does not allow this: {what}")

    def asked_by_harness():
        """The harness's own code asked (or, in the narration call alone, its tracer)."""
        asker = getframe(2).f_code.co_filename
        return asker.startswith(HARNESS_DIR) or tracing[0] and asker.startswith("<grader probe")

    def submission_on_stack():
        """Whether the submission is below the asker."""
        return submission_at_or_below(getframe(2), filename)

    def importing():
        f = getframe(2)
        while f is not None:
            if f.f_code.co_filename.startswith("<frozen importlib"):
                return True
            f = f.f_back
        return False

    def protected_type(obj):
        if not isinstance(obj, type):
            return False
        try:
            module = module_of(obj)
        except Exception:
            return True
        return type(module) is not str or module.split(".")[0] in PROTECTED_MODULES

    def hook(event, args):
        if inside:
            return
        inside.append(1)
        try:
            if event in ("os.kill", "os.killpg"):
                if args and (type(args[0]) is not int or args[0] not in (me, 0)):
                    refuse(f"{event} on another process")
            elif event in _PROCESS_EVENTS:
                refuse(f"{event} (starting a process or thread, or a socket)")
            elif event == "open":
                target = args[0] if args else None
                if type(target) not in (str, bytes, int):
                    refuse("opening a file named by an object of the submission's")
                flags = args[2] if len(args) > 2 and type(args[2]) is int else 0
                mode = args[1] if len(args) > 1 and type(args[1]) is str else ""
                path = os.fsdecode(target) if type(target) is not int else ""
                if flags & _WRITE_FLAGS or any(c in mode for c in "wax+"):
                    refuse(f"writing the file {path[:200]}")
                real = os.path.realpath(path) if path else ""
                if real and not real.startswith(readable):
                    refuse(f"reading the file {path[:200]}")
            elif event == "object.__getattr__" and len(args) > 1 and args[1] in FRAME_ATTRS:
                if not asked_by_harness() and submission_on_stack():
                    refuse(f"reaching the interpreter's frames ({args[1]})", RuntimeError)
            elif event in ("object.__setattr__", "object.__delattr__"):
                if args and protected_type(args[0]) and not importing():
                    refuse(f"patching {module_of(args[0])}.{type.__dict__['__name__'].__get__(args[0])}", RuntimeError)
                if submission_on_stack() and args and not isinstance(args[0], type):
                    refuse(f"{event} (reading or changing the grader's memory)", RuntimeError)
            elif event in ("sys.settrace", "sys.setprofile"):
                if not tracing[0] or submission_on_stack():
                    refuse(f"{event} (tracing sees the grader's frames)", RuntimeError)
            elif event in _SPYING_EVENTS:
                refuse(f"{event} (reading or changing the grader's memory)", RuntimeError)
            elif event == "compile" and len(args) > 1 and (submission_on_stack() or _posing_as_harness(args[1])):
                name = args[1] if type(args[1]) is str else os.fsdecode(args[1]) if type(args[1]) is bytes else "?"
                if not name.startswith("<") or name.startswith("<grader"):       # (harness: no submission frame)
                    refuse(f"compiling code that poses as {name[:100]}", RuntimeError)
            elif event.startswith(("ctypes.", "cffi.")) or event == "import" and args and type(args[0]) is str \
                    and args[0].split(".")[0] in ("ctypes", "_ctypes", "cffi"):
                refuse(f"{event} (reaching into the interpreter)", RuntimeError)
            elif event in ("sys._getframe", "sys._getframemodulename") and not asked_by_harness() \
                    and submission_on_stack():
                refuse(f"{event} (reaching into the interpreter)", RuntimeError)
        finally:
            inside.clear()

    sys.addaudithook(hook)


HARNESS_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def submission_at_or_below(frame, filename):
    """Whether the submission's code (its file, or code compiled at run time) is at `frame` or below
    it. A library module's own code, run by an import the submission set off (torch loads kernels
    lazily), is not the submission's doing: the walk stops at the import machinery's frame, unless
    the submission's code sits above it (a finder of its own in sys.meta_path)."""
    f = frame
    while f is not None:
        name = f.f_code.co_filename
        if name == filename or name.startswith("<") and not name.startswith(("<grader probe", "<frozen")):
            return True
        if name.startswith("<frozen importlib"):
            return False
        f = f.f_back
    return False


def _posing_as_harness(name):
    """Code compiled under the harness's own file names, which the stack checks trust."""
    name = name if type(name) is str else os.fsdecode(name) if type(name) is bytes else ""
    return name.startswith(HARNESS_DIR)


# Whose classes no submission may patch (torch, NumPy and Python's own: what probes and replies use).
PROTECTED_MODULES = {"torch", "numpy", "builtins", "math", "time", "sys", "json", "struct", "os", "types",
                     "functools", "operator", "collections", "contextlib", "weakref", "abc", "typing", "_io", "io"}


class Untouched:
    """The namespaces the harness and the probes rely on, snapshotted before the submission runs
    and compared after every call: an entry replaced or deleted is tampering, whatever it is.
    (Modules gain entries as torch and NumPy load lazily: there additions are fine; in a class an
    added entry shadows an inherited method, so there it counts.) A probe never reads a patchable
    entry while a call runs anyway (inside.TRUSTED); this catches the patch itself."""

    def __init__(self):
        import builtins
        import math
        import time
        spaces = {"torch": torch, "torch.Tensor": torch.Tensor, "torch.TensorBase": torch._C.TensorBase,
                  "torch.nn.functional": torch.nn.functional, "torch.nn": torch.nn, "torch.linalg": torch.linalg,
                  "numpy": numpy, "numpy.ndarray": numpy.ndarray, "math": math, "time": time,
                  "builtins": builtins, "struct": struct, "json": json, "os": os}
        self.before = [(name, vars(space), dict(vars(space)), tuple(vars(space)), tuple(vars(space).values()),
                        isinstance(space, type)) for name, space in spaces.items()]

    def changed(self):
        found = []
        for name, space, before, keys, values, is_class in self.before:
            if len(found) >= 3:
                break
            # Fast path, by identity in C: every entry still in its place (a dict changes an entry in place
            # or appends; a deleted key never comes back where it was), additions only after them.
            if all(map(operator.is_, space, keys)) and all(map(operator.is_, space.values(), values)) and (
                    len(space) >= len(keys)) and not (is_class and len(space) != len(keys)):
                continue
            for key, value in before.items():
                if space.get(key, _GONE) is not value:
                    found.append(f"{name}.{key} (replaced by your code: tampering)")
                    break
            else:
                if is_class and len(space) != len(before):
                    added = next((k for k in list(space) if k not in before), "?")
                    found.append(f"{name}.{added} (added by your code: tampering)")
        return found


_GONE = object()
