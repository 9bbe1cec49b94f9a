"""What watch, drill and the interview share: the screen, one grade of a save, the clock."""
import os
import subprocess
import sys

from ..exercises import REPO
from . import state


def poll_seconds():
    """Seconds between checks for a save (STUDY_POLL, default 0.5)."""
    return max(0.02, float(os.environ.get("STUDY_POLL", "0.5")))


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


def grade(ex, screen):
    """Runs the grader on one exercise, its report going straight to the screen; returns its JSON."""
    with state.report_file() as tmp:
        subprocess.run([sys.executable, "-m", "grader", ex.id, "--narrate", "--json", tmp], cwd=REPO,
                       env={**os.environ, "GRADER_ON_SAVE": "1"})    # the report says "save", not "make grade"
        report = state.load_json(tmp, None)
    entry = None
    if report:
        entry = next((e for e in report.get("exercises", []) if e.get("id") == ex.id), None)
    if entry:
        state.note_grade(entry)
    return entry
