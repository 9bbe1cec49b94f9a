"""A submission runs in a child process forked from the grader; the grader only talks to it.

Why a child: whatever the submission does (loop forever, exit, crash, eat memory, flood
stdout, patch torch) stays there, and the grader kills it or reads its death. Why fork:
torch is already imported, so a child costs milliseconds, not a second.
Why the grader compares: expected values are computed here, never in the child, so the
submission cannot read or change them, nor patch the functions that compare.
"""
import os
import pickle
import resource
import select
import signal
import struct
import sys
import tempfile
import time
import traceback
import importlib.util
import linecache

import numpy
import torch

from . import wire
from .guards import Watch

CALL_TIMEOUT = float(os.environ.get("GRADER_TIMEOUT", "10"))   # seconds for one call
MEMORY_LIMIT = int(os.environ.get("GRADER_MEMORY_MB", "2048")) << 20  # beyond what torch holds
OUTPUT_LIMIT = 64 << 10        # bytes of the submission's own printing kept on disk
MAX_RESULT = 512 << 20         # bytes a result may take on the wire
MAX_CRASHES = 3                # respawns after a crash before the exercise is given up
NOBODY = 65534                 # the uid and gid the submission runs as when the grader runs as root
_LIVE = set()                  # pids of this process's sandboxes that are running


class SubmissionError(Exception):
    """The submission's code did not return a result: it raised, hung, crashed or won't load."""

    def __init__(self, kind, message, where="", exc_types=()):
        super().__init__(message)
        self.kind = kind            # raised | not_implemented | timeout | crashed | import | spent
        self.message = message
        self.where = where          # the submission's own line that raised, when known
        self.exc_types = exc_types  # names in the exception's MRO, for `raises`


def call_function(module, name, *args, **kwargs):
    """The probe most tests use: call one function of the submission."""
    fn = getattr(module, name, None)
    if fn is None:
        raise AttributeError(f"the file defines no `{name}`")
    return fn(*args, **kwargs)


def call_keeping_inputs(module, name, *args, **kwargs):
    """Calls one function and also returns its arguments as they are afterwards."""
    return call_function(module, name, *args, **kwargs), args, kwargs


class Sandbox:
    def __init__(self, path, module_name, forbidden=(), device="cpu"):
        self.path, self.module_name = path, module_name
        self.forbidden_extra = tuple(forbidden)
        self.device = device
        self.pid = None
        self.crashes = 0
        self.spent = None            # why no further call will be tried
        self.import_error = None
        self.forbidden_hits = []     # forbidden helpers seen at run time, over all calls
        self.meta = {}               # the last call's work: largest tensor, matmul flops
        self.output = tempfile.TemporaryFile()
        self._status = None          # the child's wait status, once it is known to have ended
        if os.path.isfile(path):
            # Start now, from the test fixture, before the test has computed anything: the child is
            # a copy of this process, and a copy made mid-test would hold the test's values.
            self._spawn()

    # -- parent side -------------------------------------------------------------------
    def call(self, probe, *args, **kwargs):
        if self.spent:
            raise SubmissionError("spent", self.spent)
        if self.pid is None:
            self._spawn()
        if self.spent:
            raise SubmissionError("import" if self.import_error else "spent", self.spent)
        request = pickle.dumps((probe.__module__, probe.__qualname__, args, kwargs))
        try:
            deadline = time.monotonic() + CALL_TIMEOUT
            self._send_request(request, deadline)
            reply = self._receive(deadline)
        except SubmissionError as e:
            if e.kind == "timeout":
                self.spent = (f"not run: your code did not finish within {CALL_TIMEOUT:g} s "
                              "in an earlier check, so the rest of this exercise was stopped")
            raise
        except (BrokenPipeError, EOFError):
            raise self._died() from None
        for name in reply["meta"]["forbidden"]:
            if name not in self.forbidden_hits:
                self.forbidden_hits.append(name)
        self.meta = reply["meta"]
        if "error" in reply:
            e = reply["error"]
            kind = "not_implemented" if "NotImplementedError" in e["types"] else "raised"
            raise SubmissionError(kind, e["message"], e["where"], tuple(e["types"]))
        try:
            return wire.decode(reply["result"])
        except Exception:
            raise self._garbled() from None

    def _receive(self, deadline):
        header = self._read_exactly(8, deadline)
        (size,) = struct.unpack("<Q", header)
        if size > MAX_RESULT:
            self.close()
            raise SubmissionError("raised", f"the result is too large to grade ({size >> 20} MiB)")
        body = self._read_exactly(size, deadline)
        kind, payload = body[:1], body[1:]
        try:
            meta_len = struct.unpack_from("<I", payload)[0]
            meta = wire.decode(payload[4:4 + meta_len])
            if kind == b"R":                       # a result
                reply = {"meta": meta, "result": payload[4 + meta_len:]}
            elif kind == b"E":                     # an error
                reply = {"meta": meta, "error": wire.decode(payload[4 + meta_len:])}
                e = reply["error"]
                if not (isinstance(e["types"], list) and isinstance(e["message"], str) and isinstance(e["where"], str)):
                    raise ValueError("a malformed error")
            else:
                raise ValueError(kind)
            if not (isinstance(meta["forbidden"], list) and all(isinstance(n, str) for n in meta["forbidden"])):
                raise ValueError("malformed meta")
            return reply
        except Exception:
            raise self._garbled() from None

    def _garbled(self):
        self.close()
        return SubmissionError("crashed", "the grader could not read what came back from your code "
                                          "(did it write to a file descriptor it does not own?)")

    def _timeout(self):
        self.close()
        return SubmissionError("timeout", f"your code did not finish within {CALL_TIMEOUT:g} s "
                                          "(an endless loop, or far too much work?)")

    def _ended(self):
        """True once the child has ended (a process it started may still hold its pipes)."""
        if self._status is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = self.pid, 0
            if pid:
                self._status = status
        return self._status is not None

    def _send_request(self, data, deadline):
        data = struct.pack("<Q", len(data)) + data
        while data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._timeout()
            if not select.select([], [self.to_child], [], min(left, 0.25))[1]:
                if self._ended():
                    raise EOFError
                continue
            data = data[os.write(self.to_child, data[:1 << 16]):]

    def _read_exactly(self, n, deadline):
        chunks, got = [], 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._timeout()
            if not select.select([self.from_child], [], [], min(left, 0.25))[0]:
                if self._ended() and not select.select([self.from_child], [], [], 0)[0]:
                    raise EOFError
                continue
            chunk = os.read(self.from_child, min(n - got, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _died(self):
        pid, self.pid = self.pid, None
        _LIVE.discard(pid)
        _kill_group(pid)
        status = self._status
        if status is None:
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:
                status = 0
        self._status = None
        _reap_orphans()
        os.close(self.to_child)
        os.close(self.from_child)
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            why = {signal.SIGSEGV: "a segmentation fault", signal.SIGKILL: "SIGKILL (out of memory?)",
                   signal.SIGABRT: "an abort", signal.SIGXFSZ: "printing too much"}.get(
                       sig, signal.Signals(sig).name)
            message = f"the process running your code was killed by {why}"
        else:
            message = f"your code ended the process (exit status {os.WEXITSTATUS(status)}, e.g. os._exit)"
        self.crashes += 1
        if self.crashes >= MAX_CRASHES:
            self.spent = f"not run: {message}, {self.crashes} times"
        return SubmissionError("crashed", message)

    def _spawn(self):
        up_r, up_w = os.pipe()
        down_r, down_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        _become_subreaper()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(up_r)
                os.close(down_w)
                _child(self, down_r, up_w)
            except BaseException:
                code = 70
                try:
                    traceback.print_exc()
                except BaseException:
                    pass
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                except BaseException:
                    pass
                os._exit(code)
        try:
            os.setpgid(pid, pid)     # its own process group, so that close() ends what it started
        except OSError:
            pass
        _LIVE.add(pid)
        os.close(up_w)
        os.close(down_r)
        os.set_blocking(down_w, False)
        self.pid, self.to_child, self.from_child = pid, down_w, up_r
        self._status = None
        try:
            hello = self._receive(time.monotonic() + CALL_TIMEOUT)
        except EOFError:
            err = self._died()
            self.import_error = self.spent = f"your file could not be loaded: {err.message}"
            return
        except SubmissionError as e:
            self.import_error = self.spent = f"your file could not be loaded: {e.message}"
            return
        if "error" in hello:
            e = hello["error"]
            self.import_error = self.spent = f"your file could not be loaded: {e['message']}" + (
                f" ({e['where']})" if e["where"] else "")
            self.close()

    def close(self):
        if self.pid is not None:
            pid, self.pid = self.pid, None
            _LIVE.discard(pid)
            _kill_group(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if self._status is None:
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
            self._status = None
            os.close(self.to_child)
            os.close(self.from_child)
            _reap_orphans()

    def printed(self, limit=1200):
        """What the submission printed (stdout and stderr), cut to a readable length."""
        self.output.seek(0)
        text = self.output.read(limit + 1).decode(errors="replace")
        return text if len(text) <= limit else text[:limit] + "\n[... cut]"


def _send(fd, data):
    data = struct.pack("<Q", len(data)) + data
    while data:
        n = os.write(fd, data)
        data = data[n:]


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def _become_subreaper():
    """Linux: processes a submission starts and leaves behind become ours, to be ended."""
    global _subreaper
    if _subreaper is None:
        _subreaper = False
        try:
            import ctypes
            _subreaper = ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
        except Exception:
            pass


_subreaper = None


def _reap_orphans():
    """Kills and reaps processes a submission left behind (they were re-parented to us)."""
    if not _subreaper:
        return
    me = os.getpid()
    try:
        tasks = os.listdir(f"/proc/{me}/task")
    except OSError:
        return
    for tid in tasks:
        try:
            with open(f"/proc/{me}/task/{tid}/children") as f:
                children = [int(p) for p in f.read().split()]
        except (OSError, ValueError):
            continue
        for pid in children:
            if pid in _LIVE or not _is_orphan_of_sandbox(pid):
                continue
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass


def _is_orphan_of_sandbox(pid):
    """A child of ours that we did not fork as a sandbox: it runs a sandbox's leftovers."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return int(fields.get("Uid", "0").split()[0]) == NOBODY or os.getpgid(pid) != os.getpgid(0)
    except (OSError, ValueError):
        return False


# -- child side ----------------------------------------------------------------------------
# What a submission could use to read expected values or tamper with the grader in its own
# process. (pytest itself stays: torch consults it lazily, and the child's copy is harmless.)
_PRIVATE_ROOTS = ("grader", "solutions", "exercises", "tests", "conftest", "bench")


class _Blocker:
    """Refuses imports of the grader, the reference and other exercises inside the child."""

    def __init__(self, note=None):
        self.note = note

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _PRIVATE_ROOTS or name.startswith("exercise_"):
            if self.note:
                self.note(f"import {name} (the grader, the reference or another exercise: tampering)")
            raise ImportError(f"an exercise may not import `{name}`")
        return None


_PROCESS_EVENTS = {"os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec", "os.system",
                   "subprocess.Popen", "pty.spawn"}
_SPYING_EVENTS = {"gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames",
                  "sys.settrace", "sys.setprofile", "sys.addaudithook", "sys.remote_exec"}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def _install_audit(path, note):
    """Python's audit hooks (permanent once added) see the submission start processes, signal
    others, write files, read the grader's memory (gc, frames) or call C through ctypes: each is
    refused and scored as tampering. Code that reaches the system without Python (a C extension
    of its own) is beyond them."""
    me = os.getpid()
    getframe = sys._getframe
    busy = []

    def from_submission():
        """The submission called it, itself or through inspect or ctypes (not through a library
        that looks at its caller, as namedtuple does)."""
        f = getframe(2)
        if f is not None and f.f_code.co_filename != path and os.path.basename(
                os.path.dirname(f.f_code.co_filename) if f.f_code.co_filename.endswith("__init__.py")
                else f.f_code.co_filename) in ("inspect.py", "ctypes"):
            f = f.f_back
        return f is not None and f.f_code.co_filename == path

    def refuse(what, exc=PermissionError):
        note(what)
        raise exc(f"the grader does not allow this: {what}")

    def hook(event, args):
        if busy:
            return
        busy.append(1)
        try:
            if event in _PROCESS_EVENTS:
                refuse(f"{event} (starting a process: tampering)")
            elif event in ("os.kill", "os.killpg"):
                if args and args[0] not in (me, 0):
                    refuse(f"{event} on another process (tampering)")
            elif event == "open":
                flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
                if flags & _WRITE_FLAGS and not str(args[0]).startswith("/dev/"):
                    refuse(f"writing the file {args[0]} (tampering)")
            elif event in _SPYING_EVENTS:
                refuse(f"{event} (reading the grader's memory: tampering)", RuntimeError)
            elif event == "sys._getframe" or event.startswith("ctypes."):
                if from_submission():
                    refuse(f"{event.split('(')[0]} (reaching into the interpreter: tampering)", RuntimeError)
        finally:
            busy.clear()

    sys.addaudithook(hook)


def _child(box, down_r, up_w):
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)       # printing too much fails the write
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    out = box.output.fileno()
    os.dup2(out, 1)
    os.dup2(out, 2)
    # Nothing else of the grader's stays open here (its pipes to workers, pytest's captured
    # stdout): a process the submission starts could hold them and keep the grader waiting.
    low = 3
    for fd in sorted((down_r, up_w)):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 16)
    sys.stdout = sys.__stdout__ = open(1, "w", closefd=False, errors="replace")
    sys.stderr = sys.__stderr__ = open(2, "w", closefd=False, errors="replace")
    resource.setrlimit(resource.RLIMIT_FSIZE, (OUTPUT_LIMIT, OUTPUT_LIMIT))
    if box.device == "cpu":
        with open("/proc/self/statm") as f:
            in_use = int(f.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (in_use + MEMORY_LIMIT, in_use + MEMORY_LIMIT))

    try:
        with open(box.path, "rb") as f:
            source = f.read()
    except OSError as exc:
        source = exc
    if os.geteuid() == 0:
        _drop_root()
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)      # die with the grader (PR_SET_PDEATHSIG)
    except Exception:
        pass

    # Keep what the child needs privately, then hide the grader from the submission.
    modules = dict(sys.modules)
    send, decode_request, encode, watch = _send, pickle.loads, wire.encode, Watch(box.forbidden_extra)
    for name in list(sys.modules):
        if name.split(".")[0] in _PRIVATE_ROOTS or name.startswith("exercise_"):
            del sys.modules[name]

    def note(what):
        if what not in watch.forbidden:
            watch.forbidden.append(what)

    sys.meta_path.insert(0, _Blocker(note))
    sys.dont_write_bytecode = True
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path[:] = [p for p in sys.path if p not in ("", ".", repo) and os.path.abspath(p) != repo]

    intact = _Untouched()

    def reply(ok, payload):
        for what in intact.changed():
            note(what)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            pass
        meta = encode({"forbidden": list(watch.forbidden), "largest": watch.largest,
                       "matmul_flops": watch.matmul_flops})
        send(up_w, (b"R" if ok else b"E") + struct.pack("<I", len(meta)) + meta + payload)

    def failure(exc):
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == box.path]
        where = f"line {frames[-1].lineno}: {(frames[-1].line or '').strip()}" if frames else ""
        if isinstance(exc, SyntaxError) and exc.filename == box.path:
            where = f"line {exc.lineno}: {(exc.text or '').strip()}"
        types = [t.__name__ for t in type(exc).__mro__]
        try:
            text = str(exc)
        except BaseException:
            text = ""
        message = f"{type(exc).__name__}: {text}"[:600] if text else type(exc).__name__
        if isinstance(exc, SystemExit):
            message = "your code called sys.exit()"
        elif isinstance(exc, MemoryError) or "can't allocate memory" in text or "not enough memory" in text:
            message = "your code ran out of memory (" + message[:200] + ")"
        return encode({"types": types, "message": message, "where": where})

    watching = watch.mode()
    _install_audit(box.path, note)
    try:
        if isinstance(source, OSError):
            raise source
        text = source.decode("utf-8", errors="replace")
        linecache.cache[box.path] = (len(text), None, text.splitlines(True), box.path)
        code = compile(source, box.path, "exec", dont_inherit=True)
        spec = importlib.util.spec_from_file_location(box.module_name, box.path)
        module = importlib.util.module_from_spec(spec)
        with watching:
            exec(code, module.__dict__)
    except BaseException as exc:
        reply(False, failure(exc))
        return
    reply(True, encode(None))

    while True:
        header = _read_all(down_r, 8)
        if header is None:
            return
        mod_name, qualname, args, kwargs = decode_request(_read_all(down_r, struct.unpack("<Q", header)[0]))
        probe = modules[mod_name]
        for part in qualname.split("."):
            probe = getattr(probe, part)
        if box.device != "cpu":
            args, kwargs = _to_device((args, kwargs), box.device)
        watch.reset()
        try:
            with watching:
                result = probe(module, *args, **kwargs)
            for name in wire.disguised(result):
                note(f"a {name} returned in place of a plain tensor (a subclass can lie about its values)")
            payload = encode(result)
        except BaseException as exc:
            reply(False, failure(exc))
            continue
        reply(True, payload)


def _drop_root():
    """As root (a container, CI), the submission runs as nobody: it can neither signal the grader
    nor write its files, the exercises or the Python installation. It keeps only the right to
    read any file (CAP_DAC_READ_SEARCH), since Python may live where only root can read."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(38, 1, 0, 0, 0)                      # PR_SET_NO_NEW_PRIVS: no setuid programs
        libc.prctl(8, 1, 0, 0, 0)                       # PR_SET_KEEPCAPS across setuid
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)   # _LINUX_CAPABILITY_VERSION_3, this process
        read_search = 1 << 2                            # CAP_DAC_READ_SEARCH
        data = (ctypes.c_uint32 * 6)(read_search, read_search, 0, 0, 0, 0)
        libc.capset(header, data)
        libc.prctl(8, 0, 0, 0, 0)
    except Exception:
        pass


class _Untouched:
    """Notices a submission replacing what torch, NumPy or Python compare and report with."""

    WATCHED = {
        "torch": "allclose isclose equal eq ne abs sub subtract testing isfinite isnan where as_tensor "
                 "from_numpy frombuffer Tensor view_as_real",
        "torch.Tensor": "__eq__ __ne__ __sub__ __rsub__ __abs__ __bool__ __lt__ __le__ __gt__ __ge__ __float__ "
                        "__torch_function__ __torch_dispatch__ __reduce_ex__ __repr__ allclose equal eq ne abs "
                        "sub detach cpu contiguous view reshape numpy as_subclass is_complex tolist item to",
        "torch.testing": "assert_close",
        "numpy": "allclose isclose array_equal testing asarray ascontiguousarray frombuffer ndarray",
        "numpy.testing": "assert_allclose assert_array_equal assert_equal",
        "builtins": "isinstance type len repr str int float bool getattr hasattr list tuple dict __import__ "
                    "print open",
        "struct": "pack unpack unpack_from",
        "json": "dumps loads",
        "os": "write read _exit",
    }

    def __init__(self):
        import builtins
        spaces = {"torch": torch, "torch.Tensor": torch.Tensor, "torch.testing": torch.testing,
                  "numpy": numpy, "numpy.testing": numpy.testing, "builtins": builtins,
                  "struct": struct, "json": wire.json, "os": os}
        spaces["torch.TensorBase"] = torch._C.TensorBase
        watched = dict(self.WATCHED, **{"torch.TensorBase": self.WATCHED["torch.Tensor"]})
        # A module may gain attributes lazily (numpy.testing): only what it had is watched;
        # a class gains none, so adding a method there counts too.
        self.before = [(name, vars(spaces[name]), key, vars(spaces[name]).get(key, _GONE))
                       for name, keys in watched.items() for key in keys.split()
                       if isinstance(spaces[name], type) or key in vars(spaces[name])]

    def changed(self):
        return [f"{name}.{key} (replaced by your code: tampering)"
                for name, space, key, value in self.before if space.get(key, _GONE) is not value][:3]


_GONE = object()


def _read_all(fd, n):
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _to_device(obj, device):
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_to_device(x, device) for x in obj)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    return obj
