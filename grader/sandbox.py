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

import torch

from . import wire
from .guards import Watch

CALL_TIMEOUT = float(os.environ.get("GRADER_TIMEOUT", "10"))   # seconds for one call
MEMORY_LIMIT = int(os.environ.get("GRADER_MEMORY_MB", "2048")) << 20  # beyond what torch holds
OUTPUT_LIMIT = 64 << 10        # bytes of the submission's own printing kept on disk
MAX_RESULT = 512 << 20         # bytes a result may take on the wire
MAX_CRASHES = 3                # respawns after a crash before the exercise is given up


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
            _send(self.to_child, request)
            reply = self._receive(time.monotonic() + CALL_TIMEOUT)
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
        return wire.decode(reply["result"])

    def _receive(self, deadline):
        header = self._read_exactly(8, deadline)
        (size,) = struct.unpack("<Q", header)
        if size > MAX_RESULT:
            self.close()
            raise SubmissionError("raised", f"the result is too large to grade ({size >> 20} MiB)")
        body = self._read_exactly(size, deadline)
        kind, payload = body[:1], body[1:]
        if kind == b"R":                       # a result
            meta_len = struct.unpack_from("<I", payload)[0]
            meta = wire.decode(payload[4:4 + meta_len])
            return {"meta": meta, "result": payload[4 + meta_len:]}
        meta_len = struct.unpack_from("<I", payload)[0]  # an error
        meta = wire.decode(payload[4:4 + meta_len])
        return {"meta": meta, "error": wire.decode(payload[4 + meta_len:])}

    def _read_exactly(self, n, deadline):
        chunks, got = [], 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.from_child], [], [], left)[0]:
                self.close()
                raise SubmissionError("timeout", f"your code did not finish within {CALL_TIMEOUT:g} s "
                                                 "(an endless loop, or far too much work?)")
            chunk = os.read(self.from_child, min(n - got, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _died(self):
        pid, self.pid = self.pid, None
        _, status = os.waitpid(pid, 0)
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
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(up_r)
                os.close(down_w)
                _child(self, down_r, up_w)
            except BaseException:
                code = 70
            finally:
                os._exit(code)
        os.close(up_w)
        os.close(down_r)
        self.pid, self.to_child, self.from_child = pid, down_w, up_r
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
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
            os.close(self.to_child)
            os.close(self.from_child)
            self.pid = None

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


# -- child side ----------------------------------------------------------------------------
# What a submission could use to read expected values or tamper with the grader in its own
# process. (pytest itself stays: torch consults it lazily, and the child's copy is harmless.)
_PRIVATE_ROOTS = ("grader", "solutions", "exercises", "tests", "conftest", "bench")


class _Blocker:
    """Refuses imports of the grader, the reference and other exercises inside the child."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _PRIVATE_ROOTS or name.startswith("exercise_"):
            raise ImportError(f"an exercise may not import `{name}`")
        return None


def _child(box, down_r, up_w):
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)       # printing too much fails the write
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)      # die with the grader (PR_SET_PDEATHSIG)
    except Exception:
        pass
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    out = box.output.fileno()
    os.dup2(out, 1)
    os.dup2(out, 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (OUTPUT_LIMIT, OUTPUT_LIMIT))
    if box.device == "cpu":
        with open("/proc/self/statm") as f:
            in_use = int(f.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (in_use + MEMORY_LIMIT, in_use + MEMORY_LIMIT))

    # Keep what the child needs privately, then hide the grader from the submission.
    modules = dict(sys.modules)
    send, decode_request, encode, watch = _send, pickle.loads, wire.encode, Watch(box.forbidden_extra)
    for name in list(sys.modules):
        if name.split(".")[0] in _PRIVATE_ROOTS or name.startswith("exercise_"):
            del sys.modules[name]
    sys.meta_path.insert(0, _Blocker())
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path[:] = [p for p in sys.path if p not in ("", ".", repo) and os.path.abspath(p) != repo]

    def reply(ok, payload):
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
    try:
        spec = importlib.util.spec_from_file_location(box.module_name, box.path)
        module = importlib.util.module_from_spec(spec)
        with watching:
            spec.loader.exec_module(module)
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
            payload = encode(result)
        except BaseException as exc:
            reply(False, failure(exc))
            continue
        reply(True, payload)


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
