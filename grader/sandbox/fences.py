"""The Python-level fences inside a sandbox child, put up before the submission's code runs.

They sit on top of lockdown.py's operating-system layers and guard the watch (watch.py) from the
submission it watches: the library routes to forbidden helpers are poisoned, the watch's modes
cannot be popped off torch's mode stack, threads are refused, and an audit hook refuses
processes, signals, sockets, writes, reads outside Python's folders, frames, gc and ctypes.
Each refusal is a finding. Runs in the sandbox: standard library and torch only.
"""
import json
import os
import struct
import sys

import numpy
import torch

import watch as watching
BUSY = {"busy": 0}          # > 0 while the harness itself runs: the guards let it by
FRAME_HOLDERS = {"tb_frame", "gi_frame", "cr_frame", "ag_frame"}      # how Python code reaches a frame
FRAME_ATTRS = FRAME_HOLDERS | {"f_code", "gi_code", "cr_code", "ag_code", "__code__"}

class GuardedMode:
    """The watch's torch modes, entered as the harness (so the mode-stack guard lets them by),
    and checked after each call: still in place, on top."""

    def __init__(self, together, harness):
        self.together, self.harness = together, harness
        self.function_len = torch._C._len_torch_function_stack
        self.dispatch_len = torch._C._len_torch_dispatch_stack
        self.function_at = torch._C._get_function_stack_at
        self.dispatch_at = torch._C._get_dispatch_stack_at
        self.broken = False

    def __enter__(self):
        self.harness["busy"] += 1
        try:
            self.together.__enter__()
        finally:
            self.harness["busy"] -= 1
        return self

    def __exit__(self, *exc):
        self.harness["busy"] += 1
        try:
            ops, functions = self.together.managers
            self.broken = not (self.function_len() and self.function_at(self.function_len() - 1) is functions
                               and self.dispatch_len() and self.dispatch_at(self.dispatch_len() - 1) is ops)
            if not self.broken:
                self.together.__exit__(*exc)
        finally:
            self.harness["busy"] -= 1
        return False

    def check(self):
        if self.broken:
            raise RuntimeError("the grader's watch was taken off torch's mode stack")


def poison_library_routes(watch, harness):
    """torch._refs, torch._prims and torch._decomp hold Python versions of the forbidden helpers,
    which run as ops the watch would not name: each becomes a refusal that names it."""
    def poisoned(name):
        def refuse(*args, **kwargs):
            watch.note(name)
            raise RuntimeError(f"the grader does not allow `{name}` here")
        return refuse

    for modname, module in list(sys.modules.items()):
        if not modname.startswith(("torch._refs", "torch._prims", "torch._decomp")) or module is None:
            continue
        for attr, value in list(vars(module).items()):
            if callable(value) and not isinstance(value, type) and watching.is_forbidden(attr, watch.extra):
                setattr(module, attr, poisoned(f"{modname}.{attr}"))
            elif isinstance(value, dict) and "decomposition" in attr:
                for key in list(value):
                    if watching.is_forbidden(str(key), watch.extra):
                        value[key] = poisoned(f"{modname}.{attr}[{key}]")


def guard_mode_stack(watch, harness, filename):
    """Taking the watch's modes off torch's mode stack (popping them, reading them, disabling
    current modes) is refused when the submission asks for it; torch's own code does it all
    the time (to call a mode's handler), and is let by."""
    torch_dir = os.path.dirname(torch.__file__) + os.sep
    passthrough = (os.path.abspath(__file__), os.path.join(torch_dir, "overrides.py"),
                   os.path.join(torch_dir, "utils", "_python_dispatch.py"), _contextlib_file())
    getframe = sys._getframe

    def asked_by_submission():
        f = getframe(2)
        while f is not None and f.f_code.co_filename in passthrough:
            f = f.f_back
        return f is not None and f.f_code.co_filename == filename

    def guarded(name, original):
        def call(*args, **kwargs):
            if not harness["busy"] and asked_by_submission():
                watch.note(f"{name} (taking the grader's watch off: tampering)")
                raise RuntimeError("the grader does not allow this: its watch stays on")
            return original(*args, **kwargs)
        return call

    homes = [torch._C, sys.modules["torch.overrides"], sys.modules["torch.utils._python_dispatch"]]
    names = ("_pop_torch_function_stack", "_pop_torch_dispatch_stack", "_get_function_stack_at",
             "_get_dispatch_stack_at", "_unset_dispatch_mode", "_set_dispatch_mode",
             "_disable_current_modes", "_pop_mode", "_pop_mode_temporarily", "_DisableTorchDispatch",
             "DisableTorchFunction", "_len_torch_function_stack", "_len_torch_dispatch_stack")
    for name in names:
        originals = {id(getattr(h, name)): getattr(h, name) for h in homes if hasattr(h, name)}
        wrappers = {key: guarded(name, original) for key, original in originals.items()}
        for home in homes:
            if id(getattr(home, name, None)) in wrappers:
                setattr(home, name, wrappers[id(getattr(home, name))])


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


_PROCESS_EVENTS = {"os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec", "os.system",
                   "subprocess.Popen", "pty.spawn", "_thread.start_new_thread", "os.kill", "os.killpg",
                   "signal.pthread_kill", "os.pidfd_open", "socket.__new__", "socket.socket"}
_SPYING_EVENTS = {"gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames",
                  "sys.settrace", "sys.setprofile", "sys.addaudithook", "sys.remote_exec",
                  "sys._getframemodulename", "code.__new__", "function.__new__", "builtins.breakpoint",
                  "object.__setattr__", "object.__delattr__"}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def install_audit(filename, watch, harness, readable):
    """Python's audit hooks see what the operating system's layers may not be there to stop on
    every machine: processes, signals, writing or reading files outside Python, frames, gc,
    ctypes. Each is refused and scored as tampering. Not a sandbox by itself (CPython says so):
    a layer on top of lockdown.py's."""
    me = os.getpid()
    getframe = sys._getframe
    readable = tuple(os.path.realpath(p).rstrip("/") + ("/" if os.path.isdir(p) else "") for p in readable)
    busy = []

    def refuse(what, exc=PermissionError):
        watch.note(f"{what} (tampering)")
        raise exc(f"the grader does not allow this: {what}")

    def from_submission():
        """The submission called it, itself or through inspect or ctypes (not through a library
        that looks at its caller, as namedtuple does)."""
        f = getframe(2)
        if f is not None and f.f_code.co_filename != filename and os.path.basename(
                os.path.dirname(f.f_code.co_filename) if f.f_code.co_filename.endswith("__init__.py")
                else f.f_code.co_filename) in ("inspect.py", "ctypes", "traceback.py"):
            f = f.f_back
        return f is not None and f.f_code.co_filename == filename

    def hook(event, args):
        if busy or harness["busy"]:
            return
        busy.append(1)
        try:
            if event in ("os.kill", "os.killpg"):
                if args and args[0] not in (me, 0):
                    refuse(f"{event} on another process")
            elif event in _PROCESS_EVENTS:
                refuse(f"{event} (starting a process or thread, or a socket)")
            elif event == "open":
                path, flags = str(args[0]), args[2] if len(args) > 2 and isinstance(args[2], int) else 0
                mode = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
                if flags & _WRITE_FLAGS or any(c in mode for c in "wax+"):
                    refuse(f"writing the file {path[:200]}")
                real = os.path.realpath(path) if not isinstance(args[0], int) else ""
                if real and not real.startswith(readable):
                    refuse(f"reading the file {path[:200]}")
            elif event == "object.__getattr__" and len(args) > 1 and args[1] in FRAME_ATTRS:
                if args[1] in FRAME_HOLDERS or from_submission():
                    refuse(f"reaching the interpreter's frames ({args[1]})", RuntimeError)
            elif event in _SPYING_EVENTS:
                if event.startswith("object.__") and not from_submission():
                    return
                if event == "sys.settrace" and getframe(2).f_code.co_filename.startswith("<grader probe"):
                    return          # narration's tracer
                refuse(f"{event} (reading or changing the grader's memory)", RuntimeError)
            elif event.startswith(("ctypes.", "cffi.")) or event in ("sys._getframe", "import") and (
                    event != "import" or (args and str(args[0]).split(".")[0] in ("ctypes", "_ctypes", "cffi"))):
                if event == "sys._getframe" and not from_submission():
                    return
                refuse(f"{event} (reaching into the interpreter)", RuntimeError)
        finally:
            busy.clear()

    sys.addaudithook(hook)


class Untouched:
    """Notices a submission replacing what the harness itself uses to encode and send replies."""

    WATCHED = {
        "torch.Tensor": "__reduce_ex__ __repr__ detach cpu contiguous view reshape numpy as_subclass is_complex "
                        "tolist item to",
        "numpy": "asarray ascontiguousarray ndarray",
        "builtins": "isinstance type len repr str int float bool getattr hasattr list tuple dict __import__ "
                    "print open",
        "struct": "pack unpack unpack_from",
        "json": "dumps loads",
        "os": "write read _exit",
    }

    def __init__(self):
        import builtins
        spaces = {"torch.Tensor": torch.Tensor, "numpy": numpy, "builtins": builtins, "struct": struct,
                  "json": json, "os": os, "torch.TensorBase": torch._C.TensorBase}
        watched = dict(self.WATCHED, **{"torch.TensorBase": self.WATCHED["torch.Tensor"]})
        self.before = [(name, vars(spaces[name]), key, vars(spaces[name]).get(key, _GONE))
                       for name, keys in watched.items() for key in keys.split()
                       if isinstance(spaces[name], type) or key in vars(spaces[name])]

    def changed(self):
        return [f"{name}.{key} (replaced by your code: tampering)"
                for name, space, key, value in self.before if space.get(key, _GONE) is not value][:3]


_GONE = object()
