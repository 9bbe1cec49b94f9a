"""The sandbox's side of grading: a zygote that imports torch once, and one child per exercise.

host.py starts this file as a script (`python -I -B inside.py FD ...`), inside bubblewrap where
that works. This process never imports the grader, its hidden tests or the reference, and holds
no expected value: it imports the standard library, torch, numpy and its three siblings (wire,
watch, lockdown), which it hides again before a submission runs.

Each FD is a control socket, one per grading worker; more can be handed in over one (batch: a
fresh one per submission), and a channel that closes takes its children with it. A worker asks
for a child by sending three descriptors (requests in, replies out, the file the child's
printing goes to). The child locks itself down (lockdown.py), receives the submission's source
as bytes (it never opens the learner's file), and then runs one probe per request. Everything it sends back is a frame of
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
import warnings  # noqa: E402

import numpy  # noqa: E402
import torch  # noqa: E402

import fences  # noqa: E402
import lockdown  # noqa: E402
import watch as watching  # noqa: E402
import wire  # noqa: E402

# The harness looks no name up where the submission can change it: its builtins are a copy taken
# before any submission runs, and what it calls on every request is captured here.
import builtins  # noqa: E402
import gc  # noqa: E402
__builtins__ = dict(vars(builtins))
_write, _read, _pack, _unpack, _collect = os.write, os.read, struct.pack, struct.unpack, gc.collect

# What exercises may import without reading Python's folders again after the lockdown.
PRELOAD = ("abc", "collections", "contextlib", "copy", "dataclasses", "enum", "functools", "itertools",
           "numbers", "operator", "random", "re", "string", "typing", "warnings", "statistics", "fractions")
HARNESS_MODULES = ("wire", "watch", "lockdown", "fences", "inside", "pyseccomp")
PRIVATE_ROOTS = ("grader", "solutions", "exercises", "tests", "conftest", "bench") + HARNESS_MODULES


# -- the zygote ----------------------------------------------------------------------------------
def main():
    meta = "--meta" in sys.argv
    socks = [socket.socket(fileno=int(fd)) for fd in sys.argv[1:] if fd != "--meta"]
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    for name in PRELOAD:
        __import__(name)
    _warm_up()
    watching.learn()            # torch's own operators and functions, before any submission runs
    if meta:
        _warm_meta()
    _learn_library_names()
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
    children = {s: {} for s in socks}      # per channel: its own ids, so two workers never collide

    def drop(s):    # the worker is gone (or killed): whatever it left running goes with it
        socks.remove(s)
        for pid in children.pop(s).values():
            _end(pid)
        s.close()

    def answer(s, message):
        try:
            s.sendall(json.dumps(message).encode())
        except OSError:
            drop(s)

    while socks:
        for s in select.select(socks, [], [])[0]:
            try:
                msg, fds, _, _ = socket.recv_fds(s, 1 << 16, 4)
            except OSError:
                msg, fds = b"", []
            if not msg:
                drop(s)
                continue
            req = json.loads(msg)
            if req["op"] == "spawn":
                if req.get("meta") and not _META:
                    _warm_meta()
                    _learn_library_names()
                pid = os.fork()
                if pid == 0:
                    code = 70
                    try:
                        _child(req, fds)
                        code = 0
                    except BaseException:
                        try:
                            traceback.print_exc()      # to the file the grader shows as printed output
                            sys.stderr.flush()
                        except BaseException:
                            pass
                    finally:
                        os._exit(code)
                for fd in fds:
                    os.close(fd)
                children[s][req["id"]] = pid
            elif req["op"] == "channel" and len(fds) == 1:     # a fresh channel (batch: one per submission)
                fresh = socket.socket(fileno=fds[0])
                socks.append(fresh)
                children[fresh] = {}
            elif req["op"] == "ping":
                answer(s, {"op": "pong"})
            elif req["op"] == "end":
                answer(s, {"op": "ended", "id": req["id"], "status": _end(children[s].pop(req["id"], None))})
    for mine in children.values():
        for pid in mine.values():
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


_META = []


def _learn_library_names():
    """Each child poisons the forbidden ones among torch's library routes (fences.py): their names
    are read here, once, and every child inherits what was learnt."""
    for *_, name in fences.library_routes():
        watching.is_forbidden(name, ())


def _warm_meta():
    """The meta device's kernels load torch's symbolic-shape machinery (sympy, fx: about a second),
    which a locked-down child could not read: the zygote loads it once, the first time an exercise
    whose tests check devices asks for a child, and every child after inherits it."""
    if not _META:
        _META.append(True)
        x = torch.ones(2, 3, device="meta")
        x @ x.T                     # loads the meta kernels written in Python
        _without_dynamo_wrappers()
        ((x @ x.T).softmax(-1) + torch.arange(2, device="meta")).masked_fill(x[:, :2] > 0, 0).sum()


def _without_dynamo_wrappers():
    """Many of those kernels are torch._refs functions wrapped by torch._compile._disable_dynamo,
    which imports torch._dynamo (half a second) on a function's first call, only to keep
    torch.compile from tracing into it. Nothing here compiles: each such function is marked as
    its own disabled form, which is what the wrapper caches after that import. In a torch where
    the wrapper differs, nothing is marked and the import happens as before."""
    try:
        from torch._compile import _disable_dynamo
        inner = next(c for c in _disable_dynamo.__code__.co_consts if getattr(c, "co_name", "") == "inner")
        slot = inner.co_freevars.index("fn")
    except (ImportError, StopIteration, ValueError):
        return
    seen = set()
    for name, module in list(sys.modules.items()):
        if not name.startswith("torch.") or module is None:
            continue
        todo = [v for v in list(vars(module).values()) if type(v) is types.FunctionType]
        while todo:             # what a function wraps: through __wrapped__ and its closure
            f = todo.pop()
            if id(f) in seen:
                continue
            seen.add(id(f))
            cells = [_contents(c) for c in f.__closure__ or ()]
            if f.__code__ is inner and type(cells[slot]) is types.FunctionType:
                cells[slot].__dict__.setdefault("__dynamo_disable", cells[slot])
            todo += [g for g in (f.__dict__.get("__wrapped__"), *cells) if type(g) is types.FunctionType]


def _contents(cell):
    try:
        return cell.cell_contents
    except ValueError:      # a cell not filled yet
        return None


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
    if req["landlock"]:
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
            data = data[_write(fd, data):]
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
    encode, disguised = wire.encode, wire.disguised   # held here: the submission cannot swap them
    out, err = sys.stdout, sys.stderr                 # the child's own files, whatever sys.stdout becomes
    tracing = [False]                                 # only the narration call may trace
    mode = fences.GuardedMode(watch.mode())
    _hide_harness(report)
    fences.poison_library_routes(watch)
    fences.guard_mode_stack(watch, filename)
    fences.guard_registrations(watch, filename)
    fences.refuse_threads(watch)
    fences.refuse_async_entries(watch, filename)
    gc.disable()    # the collector runs only inside the watch (_collect below): a finaliser runs watched
    warnings.showwarning = _show_warning
    intact = fences.Untouched()        # after the harness's own patches: from here on, nothing changes
    graveyard = []     # what the submission left behind (results, errors, inputs), released inside the watch
    fences.install_audit(filename, watch, req["readable"], tracing)
    lines = []

    def reply(ok, payload):
        for what in intact.changed():
            watch.note(what)
        for f in (out, err):
            try:
                f.flush()
            except BaseException:
                pass
        meta = encode({"largest": watch.largest, "matmul_flops": watch.matmul_flops, "work": watch.work,
                       "ops": watch.ops})
        send(b"R" if ok else b"E", _pack("<I", len(meta)) + meta + payload)

    def failure(exc):
        """What went wrong, read without running any of the submission's code: the exception's
        type by identity, its text only when its arguments are plain data, its line from the
        source the grader sent (no linecache, no loader of the submission's)."""
        kind = type(exc)
        mro = _type_mro(kind)
        where, tb = "", exc.__traceback__ if isinstance(exc, BaseException) else None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == filename and 0 < tb.tb_lineno <= len(lines):
                where = f"line {tb.tb_lineno}: {lines[tb.tb_lineno - 1].strip()}"
            tb = tb.tb_next
        if SyntaxError in mro and type(exc.filename) is str and exc.filename == filename:
            where = f"line {exc.lineno}: {(exc.text or '').strip()}" if type(exc.text) in (str, type(None)) else ""
        names = [wire.type_name_of(t) for t in mro]
        plain = all(type(a) in (str, int, float, bool) for a in _exc_args(exc)) and _type_module(kind) in (
            "builtins", "torch", "numpy") or _type_module(kind).startswith(("torch.", "numpy."))
        text = str(exc) if plain and all(type(a) in (str, int, float, bool) for a in _exc_args(exc)) else ""
        message = f"{names[0]}: {text}"[:600] if text else names[0]
        if SystemExit in mro:
            message = "your code called sys.exit()"
        elif MemoryError in mro or "can't allocate memory" in text or "not enough memory" in text:
            message = "your code ran out of memory (" + message[:200] + ")"
        elif RuntimeError in mro and "can't start new thread" in text:
            watch.note("a thread started by your code (refused: the grader cannot watch it)")
        return encode({"types": names, "message": message, "where": where})

    try:
        text = source.decode(first["encoding"])
        lines[:] = text.splitlines()
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
        code = compile(text, filename, "exec", dont_inherit=True)
        spec = importlib.util.spec_from_loader(module_name, loader=None)
        module = importlib.util.module_from_spec(spec)
        module.__file__ = filename
        module.__builtins__ = builtins        # the real module: the harness's copy stays out of its reach
        with mode:
            exec(code, module.__dict__)
            _collect(0)
        mode.check(watch)
        _quiet(watch)
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
            space = {"torch": torch, "numpy": numpy, "np": numpy, "math": math, "time": time, "trusted": TRUSTED,
                     "__builtins__": builtins}
            exec(compile(probe_source, f"<grader probe {name}>", "exec"), space)
            probes[name] = space[name]
        if req["device"] != "cpu":
            args, kwargs = _to_device((args, kwargs), req["device"])
        watch.reset()
        try:
            if watched:
                with mode:
                    del graveyard[:]        # what the last call left behind dies here, watched
                    _collect(0)             # the youngest generation: all that was made since (a full pass: 70 ms)
                    result = probes[name](module, *args, **kwargs)
                    _collect(0)
                mode.check(watch)
            else:       # narration: traces, grades nothing, and its child is closed after it
                tracing[0] = True
                try:
                    result = probes[name](module, *args, **kwargs)
                finally:
                    tracing[0] = False
            _quiet(watch)
            for kind in disguised(result):
                watch.note(f"a {kind} returned in place of a plain tensor or array (only exact types are data)")
            payload = encode(result)
            graveyard.append((request, args, kwargs, result))
        except BaseException as exc:
            graveyard.append((request, args, kwargs, exc))
            _quiet(watch)
            reply(False, failure(exc))
            continue
        reply(True, payload)


# Read with type's own descriptors, so that no metaclass or property of the submission's runs.
_type_mro = type.__dict__["__mro__"].__get__
_type_module = type.__dict__["__module__"].__get__
_exc_args = BaseException.__dict__["args"].__get__
_gettrace, _getprofile, _settrace, _setprofile = sys.gettrace, sys.getprofile, sys.settrace, sys.setprofile
_function_modes, _dispatch_modes = torch._C._len_torch_function_stack, torch._C._len_torch_dispatch_stack
_TensorBase, _StorageBase = torch._C.TensorBase, torch._C.StorageBase


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """A warning goes to the printed output without its source line: Python would read it from the
    file of the frame that warned, which may be the harness's own (a warning torch raises while the
    watch runs an op), and reading that file is refused."""
    try:
        sys.stderr.write(f"{os.path.basename(str(filename))}:{lineno}: {category.__name__}: {message}\n")
    except Exception:
        pass


def _quiet(watch):
    """After a call, nothing of the submission's may still be hooked in where the harness runs:
    a tracer, a profiler, a torch mode of its own. Each is a finding, and is removed."""
    if _gettrace() is not None or _getprofile() is not None:
        watch.note("a tracer or profiler left running (tracing sees the grader's frames: tampering)")
        _settrace(None)
        _setprofile(None)
    if _function_modes() or _dispatch_modes():
        watch.note("a torch mode left on torch's mode stack (tampering)")
        raise RuntimeError("a torch mode was left on torch's mode stack")


def _storage(t):
    """(address, bytes) of the storage under a plain tensor, through torch's C methods captured
    before any submission ran: a probe measures with these, never with what the submission can patch."""
    if type(t) is not torch.Tensor:
        return None, None
    s = _TensorBase.untyped_storage(t)
    return _StorageBase.data_ptr(s), _StorageBase.nbytes(s)


TRUSTED = types.SimpleNamespace(storage=_storage, Tensor=torch.Tensor)


def _read_request(fd, decode=wire.decode_request):
    header = _read_all(fd, 8)
    if header is None:
        return None
    body = _read_all(fd, _unpack("<Q", header)[0])
    return None if body is None else decode(body)


def _read_all(fd, n):
    chunks = []
    while n:
        chunk = _read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


# -- the watch's guards ---------------------------------------------------------------------------
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
