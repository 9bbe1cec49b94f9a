"""The sandbox's side of grading: a zygote that imports torch once, and one child per exercise.

host.py starts this file as a script (`python -I -B inside.py FD ...`), inside bubblewrap where
that works. This process never imports the grader, its hidden tests or the reference, and holds
no expected value: it imports the standard library, torch, numpy and its three siblings (wire,
watch, lockdown), which it hides again before a submission runs.

Each FD is a control socket, one per grading worker. A worker asks for a child by sending three
descriptors (requests in, replies out, the file the child's printing goes to). The child locks
itself down (lockdown.py), receives the submission's source as bytes (it never opens the
learner's file), and then runs one probe per request. Everything it sends back is a frame of
plain data (wire.py) carrying the token the grader gave it; a finding of the watch is sent the
moment it is made, so nothing that runs later can take it back.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import importlib.util  # noqa: E402
import json  # noqa: E402
import linecache  # noqa: E402
import math  # noqa: E402
import select  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import types  # noqa: E402

import numpy  # noqa: E402
import torch  # noqa: E402

import lockdown  # noqa: E402
import watch as watching  # noqa: E402
import wire  # noqa: E402

# What exercises may import without reading Python's folders again after the lockdown.
PRELOAD = ("abc", "collections", "contextlib", "copy", "dataclasses", "enum", "functools", "itertools",
           "numbers", "operator", "random", "re", "string", "typing", "warnings", "statistics", "fractions")
HARNESS_MODULES = ("wire", "watch", "lockdown", "inside", "pyseccomp")
PRIVATE_ROOTS = ("grader", "solutions", "exercises", "tests", "conftest", "bench") + HARNESS_MODULES
HARNESS = {"busy": 0}          # > 0 while the harness itself runs: the guards let it by
FRAME_HOLDERS = {"tb_frame", "gi_frame", "cr_frame", "ag_frame"}      # how Python code reaches a frame
FRAME_ATTRS = FRAME_HOLDERS | {"f_code", "gi_code", "cr_code", "ag_code", "__code__"}


# -- the zygote ----------------------------------------------------------------------------------
def main():
    socks = [socket.socket(fileno=int(fd)) for fd in sys.argv[1:]]
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    for name in PRELOAD:
        __import__(name)
    _warm_up()
    try:
        import pyseccomp  # noqa: F401   (loads libseccomp now, while files may still be read)
        seccomp = ""
    except Exception as e:
        seccomp = f"{type(e).__name__}: {e}"
    try:
        lockdown.prctl(lockdown.PR_SET_DUMPABLE, 0)
    except Exception:
        pass
    ready = {"op": "ready", "root": os.geteuid() == 0, "seccomp_error": seccomp,
             "landlock_abi": lockdown.landlock_abi(), "platform": sys.platform}
    for s in socks:
        s.sendall(json.dumps(ready).encode())
    children = {}
    while socks:
        for s in select.select(socks, [], [])[0]:
            try:
                msg, fds, _, _ = socket.recv_fds(s, 1 << 16, 4)
            except OSError:
                msg, fds = b"", []
            if not msg:
                socks.remove(s)
                s.close()
                continue
            req = json.loads(msg)
            key = (s.fileno(), req["id"])
            if req["op"] == "spawn":
                pid = os.fork()
                if pid == 0:
                    code = 70
                    try:
                        _child(req, fds)
                        code = 0
                    except BaseException:
                        HARNESS["busy"] += 1
                        try:
                            traceback.print_exc()      # to the file the grader shows as printed output
                            sys.stderr.flush()
                        except BaseException:
                            pass
                    finally:
                        os._exit(code)
                for fd in fds:
                    os.close(fd)
                children[key] = pid
            elif req["op"] == "end":
                status = _end(children.pop(key, None))
                s.sendall(json.dumps({"op": "ended", "id": req["id"], "status": status}).encode())
    for pid in children.values():
        _end(pid)


def _warm_up():
    """What torch sets up on first use (cpuinfo reads /proc and /sys; kernels load) happens
    here, once, while files may still be read: children inherit it."""
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        a = torch.ones(4, 4, dtype=dtype)
        b = (a @ a).float().softmax(-1).to(dtype)
        torch.where(b > 0, b, torch.finfo(dtype).min).exp().sum(-1).max()
        a.masked_fill(a > 2, float("-inf")).cumsum(0)
    torch.randn(3, generator=torch.Generator().manual_seed(0))


def _end(pid):
    """Kills a child (if it still runs) and returns its wait status, or None if there was none."""
    if pid is None:
        return None
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return None


# -- one child: lock down, load the source, answer probes ------------------------------------------
def _child(req, fds):
    requests, replies, printed = fds
    os.dup2(printed, 1)
    os.dup2(printed, 2)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    for fd in (requests, replies):
        os.set_inheritable(fd, False)
    keep = sorted({requests, replies})
    low = 3
    for fd in keep:
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 16)
    sys.stdout = sys.__stdout__ = open(1, "w", closefd=False, errors="replace")
    sys.stderr = sys.__stderr__ = open(2, "w", closefd=False, errors="replace")
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # printing too much fails the write instead
    if req["device"] != "cpu":                          # a GPU is opened before the doors close
        torch.zeros(1, device=req["device"])

    layers, failures = _lock_down(req)
    send = _sender(replies, bytes.fromhex(req["token"]))
    send(b"L", json.dumps({"layers": layers, "why": failures}).encode())   # the grader decides if enough
    _serve(req, requests, send)


def _lock_down(req):
    """Applies every layer it can; returns (layers in place, why each other one is not)."""
    layers, failures = [], {}

    def attempt(name, apply):
        if name in req["disable"]:
            failures[name] = "switched off by GRADER_DISABLE_LAYERS"
            return
        try:
            apply()
            layers.append(name)
        except Exception as e:
            failures[name] = f"{type(e).__name__}: {e}"

    attempt("session", os.setsid)
    try:
        lockdown.prctl(lockdown.PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:
        pass
    if req["uid"] is not None:
        attempt("uid", lambda: lockdown.drop_to(req["uid"]))
    elif os.geteuid() == 0:
        failures["uid"] = "no uid of its own was asked for"
    try:
        lockdown.prctl(lockdown.PR_SET_DUMPABLE, 0)     # no other process of this uid reads this one
    except Exception:
        pass
    memory = None
    if req["memory"] and req["device"] == "cpu":
        try:
            with open("/proc/self/statm") as f:
                memory = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE") + req["memory"]
        except OSError:
            failures["memory"] = "no /proc here: memory not limited"
    attempt("rlimits", lambda: lockdown.limit(memory, req["cpu_seconds"], req["output_bytes"]))
    if req["readable"] is not None:
        attempt("landlock", lambda: lockdown.landlock(req["readable"]))
    attempt("seccomp", lockdown.seccomp)
    if req["namespaces"] and "namespaces" not in req["disable"]:
        layers.append("namespaces")
    attempt("hidden", lambda: lockdown.cannot_read(req["hidden"]))
    return layers, failures


def _sender(fd, token):
    def send(kind, payload):
        data = wire.frame(token, kind, payload)
        while data:
            data = data[os.write(fd, data):]
    return send


def _serve(req, requests, send):
    first = _read_request(requests)
    if first is None:
        return
    source, filename, module_name = first["source"], first["filename"], first["module"]
    box = {"sent": set()}

    def report(what):
        if what not in box["sent"]:
            box["sent"].add(what)
            send(b"F", what.encode("utf-8", "replace")[:2000])

    watch = watching.Watch(req["forbidden"], numpy_only=req["numpy_only"], no_numpy=req["no_numpy"],
                           report=report)
    probes = {}
    harness = HARNESS
    encode, frame_meta = wire.encode, wire.encode
    intact = _Untouched()
    mode = _GuardedMode(watch.mode(), harness)
    _hide_harness(report)
    _poison_library_routes(watch, harness)
    _guard_mode_stack(watch, harness, filename)
    _refuse_threads(watch)
    _install_audit(filename, watch, harness)

    def reply(ok, payload):
        for what in intact.changed():
            watch.note(what)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            pass
        meta = frame_meta({"largest": watch.largest, "matmul_flops": watch.matmul_flops})
        send(b"R" if ok else b"E", struct.pack("<I", len(meta)) + meta + payload)

    def failure(exc):
        harness["busy"] += 1
        try:
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
        except BaseException:
            frames = []
        finally:
            harness["busy"] -= 1
        where = f"line {frames[-1].lineno}: {(frames[-1].line or '').strip()}" if frames else ""
        if isinstance(exc, SyntaxError) and exc.filename == filename:
            where = f"line {exc.lineno}: {(exc.text or '').strip()}"
        types_ = [t.__name__ for t in type(exc).__mro__]
        try:
            text = str(exc)
        except BaseException:
            text = ""
        message = f"{type(exc).__name__}: {text}"[:600] if text else type(exc).__name__
        if isinstance(exc, SystemExit):
            message = "your code called sys.exit()"
        elif isinstance(exc, MemoryError) or "can't allocate memory" in text or "not enough memory" in text:
            message = "your code ran out of memory (" + message[:200] + ")"
        elif isinstance(exc, RuntimeError) and "can't start new thread" in text:
            watch.note("a thread started by your code (refused: the grader cannot watch it)")
        return encode({"types": types_, "message": message, "where": where})

    try:
        text = source.decode(first["encoding"])
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
        code = compile(text, filename, "exec", dont_inherit=True)
        spec = importlib.util.spec_from_loader(module_name, loader=None)
        module = importlib.util.module_from_spec(spec)
        module.__file__ = filename
        with mode:
            exec(code, module.__dict__)
    except BaseException as exc:
        reply(False, failure(exc))
        return
    reply(True, encode(None))

    while True:
        request = _read_request(requests)
        if request is None:
            return
        _, name, probe_source, args, kwargs, watched = request
        if name not in probes:
            space = {"torch": torch, "numpy": numpy, "np": numpy, "math": math, "time": time}
            exec(compile(probe_source, f"<grader probe {name}>", "exec"), space)
            probes[name] = space[name]
        if req["device"] != "cpu":
            args, kwargs = _to_device((args, kwargs), req["device"])
        watch.reset()
        try:
            if watched:
                with mode:
                    result = probes[name](module, *args, **kwargs)
                mode.check()
            else:       # a call no grade rests on (narration, which traces)
                result = probes[name](module, *args, **kwargs)
            for kind in wire.disguised(result):
                watch.note(f"a {kind} returned in place of a plain tensor (a subclass can lie about its values)")
            payload = encode(result)
        except BaseException as exc:
            reply(False, failure(exc))
            continue
        reply(True, payload)


def _read_request(fd, decode=wire.decode_request):
    header = _read_all(fd, 8)
    if header is None:
        return None
    body = _read_all(fd, struct.unpack("<Q", header)[0])
    return None if body is None else decode(body)


def _read_all(fd, n):
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


# -- the watch's guards ---------------------------------------------------------------------------
class _GuardedMode:
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


def _hide_harness(report):
    """The grader's helpers leave the submission's view: modules, paths, __main__."""
    for name in list(sys.modules):
        if name.split(".")[0] in HARNESS_MODULES or name == "__main__":
            del sys.modules[name]
    sys.modules["__main__"] = types.ModuleType("__main__")
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE and p not in ("", ".")]
    sys.dont_write_bytecode = True

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in PRIVATE_ROOTS or name.startswith("exercise_"):
                report(f"import {name} (the grader, the reference or another exercise: tampering)")
                raise ImportError(f"an exercise may not import `{name}`")
            return None

    sys.meta_path.insert(0, Blocker())


def _poison_library_routes(watch, harness):
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


def _guard_mode_stack(watch, harness, filename):
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


def _refuse_threads(watch):
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


def _install_audit(filename, watch, harness):
    """Python's audit hooks see what the operating system's layers may not be there to stop on
    every machine: processes, signals, writing or reading files outside Python, frames, gc,
    ctypes. Each is refused and scored as tampering. Not a sandbox by itself (CPython says so):
    a layer on top of lockdown.py's."""
    me = os.getpid()
    getframe = sys._getframe
    readable = tuple(os.path.realpath(p) for p in _python_roots())
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


def _python_roots():
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, "/usr/lib", "/usr/lib64",
             "/usr/share/zoneinfo", os.path.dirname(torch.__file__), os.path.dirname(numpy.__file__)}
    roots.update(p for p in sys.path if p and os.path.isdir(p) and os.path.abspath(p) != HERE)
    return sorted(r.rstrip("/") + "/" for r in roots if r)


class _Untouched:
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


def _to_device(obj, device):
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_to_device(x, device) for x in obj)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    return obj


if __name__ == "__main__":
    main()
