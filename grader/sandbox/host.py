"""The grader's side of the sandbox: start the zygote, ask it for one child per exercise, talk to it.

Why a separate interpreter: the submission must run where nothing of the grader is, neither
its hidden tests, nor expected values, nor the pipes of other sandboxes. inside.py is started
fresh (under bubblewrap where that works), imports torch once, and forks a child per exercise,
so a child still costs milliseconds. The grader keeps the expected values and the comparisons;
what comes back is length-capped plain data, never a pickle.
"""
import hmac
import inspect
import json
import os
import secrets
import select
import signal
import tempfile
import time

from . import wire
from ..safe_text import MAX_FINDINGS, clean, one_line  # noqa: F401 (clean: imported from here elsewhere)
from .zygote import REPO, Zygote, namespaces_refusal, python_roots  # noqa: F401
CALL_TIMEOUT = float(os.environ.get("GRADER_TIMEOUT", "10"))            # seconds for one call
EXERCISE_BUDGET = float(os.environ.get("GRADER_EXERCISE_BUDGET", "60"))  # seconds for one exercise
MEMORY_LIMIT = int(os.environ.get("GRADER_MEMORY_MB", "2048")) << 20     # beyond what torch holds
OUTPUT_LIMIT = 64 << 10        # bytes of the submission's own printing kept on disk
MAX_FRAME = 64 << 20           # bytes one reply may take: checked before it is read
MAX_CRASHES = 3                # respawns after a crash before the exercise is given up
UID_BASE = 1_800_000_000       # sandboxes started as root run as uids from here, one each

# The layers a course's grade needs (--classroom, --gradescope, batch): a filter on system calls,
# limits, its own session (no terminal), the grader's private files proved unreadable (by
# namespaces, Landlock or permissions) and, when the grader runs as root, a uid of its own.
COURSE_MINIMUM = ("seccomp", "rlimits", "session", "hidden")
# Layers switched off on purpose (to see what each adds, or where one misbehaves): the report
# then shows them missing, and a course's grade refuses to run without them.
DISABLED = [name.strip() for name in os.environ.get("GRADER_DISABLE_LAYERS", "").split(",") if name.strip()]
# What the sandbox must not be able to read: the proof behind "hidden".
PRIVATE = [os.path.join(REPO, "grader", "tests"), os.path.join(REPO, "solutions"),
           os.path.join(REPO, "grader", "session.py")]


class SubmissionError(Exception):
    """The submission's code did not return a result: it raised, hung, crashed or won't load."""

    def __init__(self, kind, message, where="", exc_types=()):
        super().__init__(message)
        self.kind = kind            # raised | not_implemented | timeout | crashed | import | spent
        self.message = message
        self.where = where          # the submission's own line that raised, when known
        self.exc_types = exc_types  # names in the exception's MRO, for `raises`


class IsolationError(RuntimeError):
    """The sandbox could not be made as strong as this run requires: nothing is graded."""


def call_function(module, name, *args, **kwargs):
    """The probe most tests use: call one function of the submission."""
    fn = getattr(module, name, None)
    if fn is None:
        raise AttributeError(f"the file defines no `{name}`")
    return fn(*args, **kwargs)


def call_keeping_inputs(module, name, *args, **kwargs):
    """Calls one function and also returns its arguments as they are afterwards."""
    fn = getattr(module, name, None)
    if fn is None:
        raise AttributeError(f"the file defines no `{name}`")
    return fn(*args, **kwargs), args, kwargs


PROBE_SPACE = {"torch", "numpy", "np", "math", "time", "trusted"}     # what inside.py gives every probe
PROBE_MODULES = {"torch", "numpy", "math", "time", "sys", "re", "io", "tokenize", "itertools", "functools",
                 "collections"}                          # what else a probe may import there


def probe_source(fn, seen=None):
    """A probe's source, with the functions and plain constants of its own module that it uses:
    it travels as text, since the sandbox holds no test module."""
    seen = set() if seen is None else seen
    seen.add(fn.__name__)
    parts = []
    for name in dict.fromkeys(_global_names(fn.__code__)):
        if name in seen or name in PROBE_SPACE or name not in fn.__globals__:
            continue
        value = fn.__globals__[name]
        if inspect.isfunction(value) and value.__module__ == fn.__module__:
            parts.append(probe_source(value, seen))
        elif _plain_constant(value):
            seen.add(name)
            parts.append(f"{name} = {value!r}\n")
        elif inspect.ismodule(value) and value.__name__.split(".")[0] in PROBE_MODULES:
            seen.add(name)
            parts.append(f"import {value.__name__} as {name}\n" if "." not in value.__name__ or name != value.__name__
                         else f"import {value.__name__}\n")
        elif not inspect.ismodule(value):
            raise TypeError(f"probe {fn.__name__} uses {name}, which cannot travel to the sandbox")
    return "".join(parts) + inspect.getsource(fn)


def _global_names(code):
    """Names a function's code may look up, its nested functions' included."""
    yield from code.co_names
    for const in code.co_consts:
        if inspect.iscode(const):
            yield from _global_names(const)


def _plain_constant(value):
    if isinstance(value, (str, int, float, bool, type(None))):
        return True
    return isinstance(value, (tuple, list, set, frozenset)) and all(_plain_constant(v) for v in value)


# -- one exercise's sandbox --------------------------------------------------------------------
_SANDBOXES = [0]


class Sandbox:
    """One child of the zygote for one exercise file, respawned after a crash (up to a limit)."""

    def __init__(self, channel, source, filename, module_name, encoding="utf-8", forbidden=(), device="cpu",
                 numpy_only=False, no_numpy=False, require=(), meta=False):
        self.channel, self.source, self.filename, self.module_name = channel, source, filename, module_name
        self.encoding = encoding
        self.settings = {"forbidden": list(forbidden), "device": device, "numpy_only": numpy_only,
                         "no_numpy": no_numpy, "require": list(require), "meta": meta}
        self.child = None
        self.crashes = 0
        self.spent = None            # why no further call will be tried
        self.import_error = None
        self.forbidden_hits = []     # findings of the watch, over all calls, as sent
        self.unlisted_hits = 0       # findings beyond the first MAX_FINDINGS distinct ones
        self.layers = []             # the isolation layers the child reported in place
        self.meta = {}               # the last call's work, counted at the aten level: largest, matmul_flops, work, ops
        self.used = 0.0              # seconds of this exercise's budget spent
        self.output = tempfile.TemporaryFile()
        self._probes = {}

    # -- calls ---------------------------------------------------------------------------------
    def call(self, probe, *args, **kwargs):
        return self._call(probe, True, args, kwargs)

    def call_unwatched(self, probe, *args, **kwargs):
        """A call the grade does not rest on (narration): the watch is off, the audit hook on, and
        tracing allowed. Its child grades nothing after it: it is ended with the call."""
        try:
            return self._call(probe, False, args, kwargs)
        finally:
            self.close()

    def _call(self, probe, watched, args, kwargs):
        if self.spent:
            raise SubmissionError("spent", self.spent)
        if self.child is None:
            self._spawn()
        if self.spent:
            raise SubmissionError("import" if self.import_error else "spent", self.spent)
        name = probe.__name__
        if name not in self._probes:
            self._probes[name] = probe_source(probe)
        request = wire.request(("call", name, self._probes[name], args, kwargs, watched))
        start = time.monotonic()
        try:
            deadline, budget_bound = self._deadline(start)
            try:
                self._send(request, deadline)
                kind, payload = self._read_reply(deadline)
            except TimeoutError:
                raise self._timeout(budget_bound) from None
            except EOFError:
                raise self._died() from None
        finally:
            self.used += time.monotonic() - start
        meta, body = self._split(payload)
        self.meta = meta
        if kind == b"E":
            e = self._error(body)
            kind = "not_implemented" if "NotImplementedError" in e["types"] else "raised"
            raise SubmissionError(kind, e["message"], e["where"], tuple(e["types"]))
        try:
            return wire.decode(body)
        except Exception:
            raise self._garbled() from None

    def _deadline(self, start):
        left = EXERCISE_BUDGET - self.used
        return start + max(min(CALL_TIMEOUT, left), 0.05), left < CALL_TIMEOUT

    # -- frames ----------------------------------------------------------------------------------
    def _read_reply(self, deadline):
        """The next result or error frame; findings that come first are recorded."""
        while True:
            kind, payload = self._read_frame(deadline)
            if kind == b"F":
                what = one_line(payload.decode("utf-8", "replace"), 300)
                if what in self.forbidden_hits:
                    pass
                elif len(self.forbidden_hits) < MAX_FINDINGS:
                    self.forbidden_hits.append(what)
                else:                           # a flood of findings is counted, not kept
                    self.unlisted_hits += 1
            elif kind in (b"R", b"E", b"L", b"I"):
                return kind, payload
            else:
                raise self._garbled()

    def _read_frame(self, deadline):
        (size,) = wire.HEADER.unpack(self._read_exactly(wire.HEADER.size, deadline))
        if not wire.TOKEN_BYTES < size <= MAX_FRAME:
            raise self._garbled(f"a reply of {size:,} bytes (the limit is {MAX_FRAME >> 20} MiB)")
        body = self._read_exactly(size, deadline)
        token, kind, payload = body[:wire.TOKEN_BYTES], body[wire.TOKEN_BYTES:wire.TOKEN_BYTES + 1], \
            body[wire.TOKEN_BYTES + 1:]
        if not hmac.compare_digest(token, self.token):
            raise self._garbled("a reply the grader's sandbox did not write (forged: tampering)")
        return kind, payload

    def _split(self, payload):
        try:
            (n,) = wire.struct.unpack_from("<I", payload)
            meta = wire.decode(payload[4:4 + n])
            if not (isinstance(meta, dict) and all(type(meta.get(k)) is int for k in ("largest", "matmul_flops", "work",
                                                                                        "ops"))):
                raise ValueError
            return meta, payload[4 + n:]
        except Exception:
            raise self._garbled() from None

    def _error(self, body):
        try:
            e = wire.decode(body)
            if not (isinstance(e, dict) and isinstance(e.get("types"), list) and isinstance(e.get("message"), str)
                    and isinstance(e.get("where"), str)):
                raise ValueError
        except Exception:
            raise self._garbled() from None
        return {"types": [one_line(t, 100) for t in e["types"][:20] if isinstance(t, str)],
                "message": clean(e["message"], 800), "where": one_line(e["where"], 300)}

    def _send(self, data, deadline):
        while data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if not select.select([], [self.to_child], [], min(left, 0.25))[1]:
                continue
            try:
                data = data[os.write(self.to_child, data[:1 << 16]):]
            except (BrokenPipeError, OSError):
                raise EOFError from None

    def _read_exactly(self, n, deadline):
        chunks, got = [], 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if not select.select([self.from_child], [], [], min(left, 0.25))[0]:
                continue
            chunk = os.read(self.from_child, min(n - got, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    # -- endings -----------------------------------------------------------------------------
    def _garbled(self, what="what came back could not be read"):
        self.close()
        self.crashes += 1
        message = f"the grader could not read your code's reply: {what}"
        if "tampering" in what:
            self.forbidden_hits.append(what)
        if self.crashes >= MAX_CRASHES:
            self.spent = f"not run: {message}, {self.crashes} times"
        return SubmissionError("crashed", message)

    def _timeout(self, budget_bound):
        self.close()
        if budget_bound:
            self.spent = (f"not run: too slow, this exercise used up its time budget of {EXERCISE_BUDGET:g} s "
                          "(set by GRADER_EXERCISE_BUDGET)")
            return SubmissionError("timeout", f"too slow: this exercise's time budget of {EXERCISE_BUDGET:g} s "
                                              "ran out during this check")
        self.spent = (f"not run: your code did not finish within {CALL_TIMEOUT:g} s "
                      "in an earlier check, so the rest of this exercise was stopped")
        return SubmissionError("timeout", f"your code did not finish within {CALL_TIMEOUT:g} s "
                                          "(an endless loop, or far too much work?)")

    def _died(self):
        status = self.close()
        if status is not None and os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            why = {signal.SIGSEGV: "a segmentation fault", signal.SIGKILL: "SIGKILL (out of memory?)",
                   signal.SIGABRT: "an abort", signal.SIGXFSZ: "printing too much",
                   signal.SIGXCPU: "its CPU-time limit", signal.SIGSYS: "a forbidden system call"}.get(
                       sig, signal.Signals(sig).name)
            message = f"the process running your code was killed by {why}"
        elif status is not None:
            message = f"your code ended the process (exit status {os.WEXITSTATUS(status)}, e.g. os._exit)"
        else:
            message = "the process running your code ended"
        self.crashes += 1
        if self.crashes >= MAX_CRASHES:
            self.spent = f"not run: {message}, {self.crashes} times"
        return SubmissionError("crashed", message)

    def _spawn(self):
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        self.token = secrets.token_bytes(wire.TOKEN_BYTES)
        ready = self.channel.zygote.wait_ready()
        _SANDBOXES[0] += 1
        uid = None
        self.root = ready["root"]
        if ready["root"]:
            uid = UID_BASE + (os.getpid() % 500_000) * 64 + _SANDBOXES[0] % 64
        # what the child may read: Landlock enforces it where the kernel can, the audit hook everywhere
        readable = [*python_roots()] + [p for p in ("/usr", "/lib", "/lib64", "/etc/ld.so.cache") if os.path.exists(p)]
        try:
            self.child = self.channel.spawn(
                [requests_r, replies_w, self.output.fileno()], token=self.token.hex(), uid=uid,
                memory=MEMORY_LIMIT, cpu_seconds=int(EXERCISE_BUDGET + CALL_TIMEOUT) + 5,
                output_bytes=OUTPUT_LIMIT, namespaces=bool(self.channel.zygote.bwrap), hidden=PRIVATE,
                readable=readable, landlock=bool(ready["landlock_abi"]), disable=DISABLED, **self.settings)
        finally:
            os.close(requests_r)
            os.close(replies_w)
        self.to_child, self.from_child = requests_w, replies_r
        os.set_blocking(requests_w, False)
        start = time.monotonic()
        deadline = start + CALL_TIMEOUT + 20     # a cold first fork may page torch in
        try:
            return self._load(deadline)
        finally:
            self.used += time.monotonic() - start     # loading the file counts in the exercise's budget

    def _load(self, deadline):
        try:
            kind, payload = self._read_reply(deadline)
            if kind != b"L":
                raise self._garbled()
            report = json.loads(payload)
            self.layers = report["layers"]
            # as root, a uid of its own is never optional: a failed drop stops the run, course or not
            missing = missing_layers(self.layers, [*self.settings["require"], *(["uid"] if self.root else [])])
            if missing:
                self.close()
                raise IsolationError(isolation_refusal(missing, report["why"]))
            self._send(wire.request({"source": self.source, "filename": self.filename,
                                            "module": self.module_name, "encoding": self.encoding}), deadline)
            kind, payload = self._read_reply(deadline)
        except TimeoutError:
            err = self._timeout(False)
            self.import_error = self.spent = f"your file could not be loaded: {err.message}"
            return
        except EOFError:
            err = self._died()
            self.import_error = self.spent = f"your file could not be loaded: {err.message}"
            return
        except SubmissionError as e:
            self.import_error = self.spent = f"your file could not be loaded: {e.message}"
            return
        if kind == b"E":
            _, body = self._split(payload)
            e = self._error(body)
            self.import_error = self.spent = f"your file could not be loaded: {e['message']}" + (
                f" ({e['where']})" if e["where"] else "")
            self.close()

    def close(self):
        """Ends the child; returns its wait status when it had one."""
        if self.child is None:
            return None
        child, self.child = self.child, None
        status = self.channel.end(child)
        os.close(self.to_child)
        os.close(self.from_child)
        return status

    def printed(self, limit=1200):
        """What the submission printed (stdout and stderr), cut to a readable length, made safe."""
        self.output.seek(0)
        return clean(self.output.read(limit + 1).decode(errors="replace"), limit)


def missing_layers(layers, required):
    return list(dict.fromkeys(name for name in required if name not in layers))


def course_minimum(root):
    """What --classroom, --gradescope and batch require, unless told to grade with less."""
    return COURSE_MINIMUM + (("uid",) if root else ())


def isolation_refusal(missing, why):
    lines = [f"  - {name}: {why.get(name) or (namespaces_refusal() if name == 'namespaces' else 'not available')}"
             for name in missing]
    hint = ("\nAs root, a submission never runs without a uid of its own." if missing == ["uid"] else
            "\nSee the README, 'What the grader guarantees', for where each layer works, or pass "
            "--allow-weak-isolation (GRADER_ALLOW_WEAK_ISOLATION=1) to grade anyway.")
    return "refusing to grade: the sandbox lacks isolation this run requires:\n" + "\n".join(lines) + hint
