"""A grader kept warm for watch, drill and the interview: a save is graded in about a second.

`python -m grader.warm` imports torch, pytest and the grader once and starts the sandbox's zygote
once; then, for each request (a JSON line: the arguments of `python -m grader`, and environment
variables), it forks a fresh worker that runs `python -m grader`'s own main() over fresh channels
to that zygote, and answers with the exit status. A grade is as strict as a cold one: its own
process, its own channels, a fresh sandbox child per exercise, the same layers; the worker ends
with the grade, and the children asked for over its channels with it.

The client side (`Warm`) starts the server on first use, sends it the grade, and restarts it when
it has died or gone stale (a file of the grader changed since it started); where it cannot run,
`grade()` says so and the caller grades cold.
"""
import atexit
import json
import os
import select
import signal
import subprocess
import sys

from .exercises import GRADER_DIR, REPO


def fingerprint():
    """What changes when the grader does: every file of it, by name, size and modification time."""
    out = []
    for p in sorted(GRADER_DIR.rglob("*.py")):
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((str(p), st.st_size, st.st_mtime_ns))
    return hash(tuple(out))


# -- the server ------------------------------------------------------------------------------------
def serve(requests, replies):
    import importlib

    from . import report, session  # noqa: F401   (imports torch, pytest and the grader's modules: once)
    from .__main__ import main
    from .exercises import all_exercises
    for ex in all_exercises():      # the hidden tests too: pytest finds them imported (same name, same file)
        if ex.test_module.is_file():
            importlib.import_module(f"grader.tests.{ex.test_module.stem}")
    from .sandbox.zygote import Zygote
    session.torch.set_num_threads(1)         # before any fork: a process that never spun threads forks safely
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    jobs = int(os.environ.get("GRADER_JOBS", min(2, os.cpu_count() or 1)))
    zygote = Zygote(jobs, "cpu")
    zygote.wait_ready()
    answer = os.fdopen(replies, "w", buffering=1)
    answer.write(json.dumps({"ready": os.getpid()}) + "\n")
    for line in os.fdopen(requests):
        request = json.loads(line)
        try:
            attached = zygote.attach(jobs)
        except OSError:                      # the zygote died: a new one, and this grade on it
            zygote.close()
            zygote = Zygote(jobs, "cpu")
            attached = zygote.attach(jobs)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                zygote.keep_only(-1)          # the worker holds no channel but its own
                os.environ.update(request.get("env", {}))
                code = main(request["argv"], zygote=attached)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        attached.close()
        _, status = os.waitpid(pid, 0)
        answer.write(json.dumps({"code": os.waitstatus_to_exitcode(status)}) + "\n")
    zygote.close()


# -- the client ------------------------------------------------------------------------------------
class Warm:
    """A warm grading server, started on first use and restarted when dead or stale."""

    def __init__(self, start_timeout=120.0):
        self.process = None
        self.start_timeout = start_timeout
        self.version = None

    def _start(self):
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        # Its own session: a Ctrl-C in the terminal reaches the study command, which ends the server and
        # its workers together (stop); the server's output still goes to the terminal.
        self.process = subprocess.Popen([sys.executable, "-m", "grader.warm", str(requests_r), str(replies_w)],
                                        cwd=REPO, pass_fds=(requests_r, replies_w), stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        atexit.register(self.stop)
        os.close(requests_r)
        os.close(replies_w)
        self.to_server = os.fdopen(requests_w, "w", buffering=1)
        self.from_server = os.fdopen(replies_r)
        self.version = fingerprint()
        if self._reply(self.start_timeout) is None:
            self.stop()
            return False
        return True

    def _reply(self, timeout):
        if not select.select([self.from_server], [], [], timeout)[0]:
            return None
        line = self.from_server.readline()
        return json.loads(line) if line else None

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def grade(self, argv, env=None, timeout=900.0):
        """The exit status of `python -m grader ARGV`, graded warm; None when the server could not
        grade it (the caller then grades cold)."""
        if self.alive() and self.version != fingerprint():
            self.stop()                       # the grader changed: its modules in the server are stale
        if not self.alive() and not self._start():
            return None
        try:
            self.to_server.write(json.dumps({"argv": list(argv), "env": dict(env or {})}) + "\n")
        except OSError:
            self.stop()
            return None
        try:
            reply = self._reply(timeout)
        except BaseException:                # Ctrl-C while grading: the grade in progress ends too
            self.stop()
            raise
        if reply is None:
            self.stop()
            return None
        return reply["code"]

    def stop(self):
        if self.process is not None:
            for f in (getattr(self, "to_server", None), getattr(self, "from_server", None)):
                try:
                    f and f.close()
                except OSError:
                    pass
            try:
                os.killpg(self.process.pid, signal.SIGKILL)     # the server and a grade in progress
            except OSError:
                pass
            self.process.wait()
            self.process = None

    @property
    def pid(self):
        return self.process.pid if self.alive() else None


if __name__ == "__main__":
    os.chdir(REPO)
    serve(int(sys.argv[1]), int(sys.argv[2]))
