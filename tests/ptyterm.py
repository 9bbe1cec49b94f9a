"""A command on a pseudo-terminal that is its controlling terminal (so Ctrl-C reaches it)."""
import os
import re
import signal
import subprocess
import threading
import time

import pytest

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
CLEAR = "\x1b[2J"


def child_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}
    env.update({"NO_COLOR": "1", "STUDY_POLL": "0.05", "TERM": "xterm", "PYTHONDONTWRITEBYTECODE": "1"})
    env.update(extra)
    return env


class Terminal:
    def __init__(self, argv, cwd, **env):
        import fcntl
        import struct
        import termios
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 200, 0, 0))

        def become_controlled():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(argv, cwd=cwd, env=child_env(**env), stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True, preexec_fn=become_controlled)
        os.close(slave)
        self.master = master
        self.raw = b""
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                self.raw += data

    def raw_text(self):
        """Everything written to the terminal, escape sequences included."""
        with self.lock:
            return self.raw.decode("utf-8", "replace")

    def text(self):
        return ANSI.sub("", self.raw_text())

    def screen(self):
        """What the screen shows now: everything after the last clear, without colours."""
        return ANSI.sub("", self.raw_text().rsplit(CLEAR, 1)[-1])

    def mark(self):
        return len(self.text())

    def wait_for(self, pattern, since=0, timeout=45):
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = re.search(pattern, self.text()[since:])
            if found:
                return found
            if self.proc.poll() is not None:
                # what it wrote last may still be in the terminal: the reader ends when it has read it all
                # (on a busy machine that can take longer than any fixed pause)
                self.reader.join(timeout=10)
                found = re.search(pattern, self.text()[since:])
                if found:
                    return found
                pytest.fail(f"exited ({self.proc.returncode}) before showing {pattern!r}:\n{self.text()[-3000:]}")
            time.sleep(0.05)
        pytest.fail(f"no {pattern!r} within {timeout} s; the terminal shows:\n{self.text()[-3000:]}")

    def type(self, line):
        os.write(self.master, line.encode() + b"\r")

    def press(self, keys):
        os.write(self.master, keys)

    def wait_exit(self, timeout=30):
        try:
            code = self.proc.wait(timeout)
            self.reader.join(timeout=10)        # and the terminal read to the end, as wait_for does
            return code
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running after {timeout} s:\n{self.text()[-3000:]}")

    def close(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        try:
            os.close(self.master)
        except OSError:
            pass
