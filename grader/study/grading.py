"""What watch, drill and the interview share: the screen, one grade of a save, the clock."""
import os
import subprocess
import sys

from ..exercises import REPO
from . import state


def poll_seconds():
    """Seconds between checks for a save (STUDY_POLL, default 0.1: a stat of each exercise, cheap)."""
    return max(0.02, float(os.environ.get("STUDY_POLL", "0.1")))


def clock(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def signature(path):
    """What changes when a file is saved (None while there is no file)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class Screen:
    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.status_shown = False

    def write(self, text):
        self.stream.write(text)
        self.stream.flush()

    def clear(self):
        self.status_shown = False
        self.write("\033[H\033[2J\033[3J" if self.tty else "\n" + "-" * 72 + "\n")

    def line(self, text=""):
        if self.status_shown:
            self.write("\n")
            self.status_shown = False
        self.write(text + "\n")

    def status(self, text):
        """A line kept at the bottom and rewritten in place (a terminal only)."""
        if self.tty:
            self.write("\r\033[K" + text)
            self.status_shown = True


_warm = None


def warm():
    """The warm grader this study session grades with (grader/warm.py), or None (GRADER_WARM=0)."""
    global _warm
    if _warm is None and os.environ.get("GRADER_WARM", "1") != "0":
        from ..warm import Warm
        _warm = Warm()
    return _warm


def grade(ex, screen):
    """Runs the grader on one exercise, its report going straight to the screen; returns its JSON.
    A warm grader does it when it can (a second, not a fresh torch import); else a cold one."""
    argv = [ex.id, "--narrate"]
    on_save = {"GRADER_ON_SAVE": "1"}           # the report says "save", not "make grade"
    with state.report_file() as tmp:
        server = warm()
        if server is None or server.grade(argv + ["--json", tmp], on_save) is None:
            subprocess.run([sys.executable, "-m", "grader", *argv, "--json", tmp], cwd=REPO,
                           env={**os.environ, **on_save})
        report = state.load_json(tmp, None)
    entry = None
    if report:
        entry = next((e for e in report.get("exercises", []) if e.get("id") == ex.id), None)
    if entry:
        state.note_grade(entry)
    return entry
