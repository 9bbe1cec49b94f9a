"""Everything kept in .grade/ (git-ignored), and the only code that reads or writes it.

    last.json       each exercise's latest grade, as the grader's JSON reports it (+ seed, time)
    history.json    best scores, completions, drills and references seen, per exercise
    hints.json      which hints each exercise has shown
    pristine/       the fresh stubs, cached for when git is not at hand
    backups/        the learner's files that `reset` replaced
    drill/          the learner's own file while a drill runs (state.json says which), the lock
                    a running drill holds, and attempts/ (past drill attempts)
    interview/      every mock interview's scorecard, and the running one's state
    quiz.json       quiz results per topic

The grader itself imports this module (to remember its results): it stays standard library only.
"""
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from ..exercises import REPO

try:
    import fcntl
except ImportError:          # Windows: a drill's liveness falls back to its pid
    fcntl = None

STATE_DIR = REPO / ".grade"
LAST = STATE_DIR / "last.json"
HISTORY = STATE_DIR / "history.json"
HINT_STATE = STATE_DIR / "hints.json"
BACKUPS = STATE_DIR / "backups"
PRISTINE = STATE_DIR / "pristine"
DRILL_DIR = STATE_DIR / "drill"
DRILL_STATE = DRILL_DIR / "state.json"
DRILL_LOCK = DRILL_DIR / "lock"
ATTEMPTS = DRILL_DIR / "attempts"
INTERVIEW_DIR = STATE_DIR / "interview"
INTERVIEW_HISTORY = INTERVIEW_DIR / "history.json"
INTERVIEW_STATE = INTERVIEW_DIR / "state.json"
SCORECARD = INTERVIEW_DIR / "scorecard.txt"
QUIZ_STATE = STATE_DIR / "quiz.json"


def rel(path):
    """A path as the learner reads it: relative to the repository when it is inside it."""
    try:
        return str(Path(path).relative_to(REPO))
    except ValueError:
        return str(path)


def load_json(path, default):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


def save_json(path, data):
    write_atomic(path, json.dumps(data, indent=1).encode())


def write_atomic(path, data, like=None):
    """Writes bytes so that a reader (or a kill) never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if like is not None:
            shutil.copystat(like, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- last results: what the latest grade of each exercise said -------------------------------
def last_results():
    return load_json(LAST, {})


def full_marks(entry):
    return bool(entry) and entry.get("max_score") and entry.get("score", 0) >= entry["max_score"]


def remember(exercises, seed):
    """Keeps each exercise's latest result (the JSON report's `exercises`); other exercises' stay."""
    known = last_results()
    for ex in exercises:
        known[ex["id"]] = dict(ex, seed=seed, time=time.time())
    save_json(LAST, known)


def put_result(ex_id, entry):
    """Sets an exercise's last result back to `entry` (None: as if it had never been graded)."""
    results = last_results()
    if entry:
        results[ex_id] = entry
    else:
        results.pop(ex_id, None)
    save_json(LAST, results)


def forget_result(ex_id):
    results = last_results()
    if results.pop(ex_id, None) is not None:
        save_json(LAST, results)


@contextmanager
def report_file():
    """A fresh path for one grading run's JSON report, removed afterwards."""
    STATE_DIR.mkdir(exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".study.", suffix=".json", dir=STATE_DIR)
    os.close(fd)
    try:
        yield tmp
    finally:
        Path(tmp).unlink(missing_ok=True)


# -- history: best scores and drills ---------------------------------------------------------
def history():
    return load_json(HISTORY, {})


def slot(hist, ex_id):
    """One exercise's record in the history, made on first use."""
    return hist.setdefault(ex_id, {"best": 0.0, "max": 10.0, "completed": None, "drills": []})


def note_result(hist, entry):
    """Folds one graded result (the grader's per-exercise JSON) into the history."""
    mine = slot(hist, entry["id"])
    mine["max"] = entry.get("max_score", mine["max"])
    mine["best"] = max(mine["best"], float(entry.get("score", 0)))
    if full_marks(entry) and not mine["completed"]:
        mine["completed"] = entry.get("time", time.time())


def note_grade(entry):
    hist = history()
    note_result(hist, entry)
    save_json(HISTORY, hist)


def fold_last():
    """`make grade` writes last.json only: carry its results into the history."""
    results = last_results()
    if not results:
        return
    hist = history()
    for entry in results.values():
        if isinstance(entry, dict) and "id" in entry:
            note_result(hist, entry)
    save_json(HISTORY, hist)


def record_drill(ex, started, outcome, seconds, score, max_score, **extra):
    hist = history()
    mine = slot(hist, ex.id)
    mine["drills"].append({"started": started, "outcome": outcome, "seconds": seconds,
                           "score": score, "max_score": max_score, **extra})
    if score is not None:
        mine["best"] = max(mine["best"], float(score))
        if seconds is not None and not mine["completed"]:
            mine["completed"] = time.time()
    save_json(HISTORY, hist)
    return mine


def best_drill(record):
    times = [d["seconds"] for d in record.get("drills", []) if d.get("seconds") is not None]
    return min(times) if times else None


def note_solution_seen(ex_id, forced):
    hist = history()
    slot(hist, ex_id).setdefault("solution_seen", []).append({"time": time.time(), "forced": forced})
    save_json(HISTORY, hist)


# -- hints shown -----------------------------------------------------------------------------
def hint_state():
    return load_json(HINT_STATE, {})


def save_hint_state(state):
    save_json(HINT_STATE, state)


def forget_hints(ex_id):
    hints = hint_state()
    if hints.pop(ex_id, None) is not None:
        save_json(HINT_STATE, hints)


# -- stubs and the learner's files -----------------------------------------------------------
def cached_stub(filename):
    """The fresh stub kept in pristine/, as bytes (None if none was kept)."""
    cache = PRISTINE / filename
    return cache.read_bytes() if cache.is_file() else None


def cache_stub(filename, content):
    if cached_stub(filename) != content:
        write_atomic(PRISTINE / filename, content)


def back_up(path, stem):
    """Copies the learner's file into backups/ under a name no other backup has; returns it."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    saved = BACKUPS / f"{stem}.{stamp}.py"
    n = 1
    while saved.exists():
        n += 1
        saved = BACKUPS / f"{stem}.{stamp}-{n}.py"
    BACKUPS.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, saved)
    return saved


# -- the drill: the learner's file aside, its state, its lock ----------------------------------
def drill_state(default=None):
    return load_json(DRILL_STATE, default)


def drill_running():
    """Whether a drill's state is on disk (a live drill, or one killed before it put the file back)."""
    return DRILL_STATE.exists()


def set_aside(path, filename, state):
    """Copies the learner's file into drill/, then records the drill's state (in that order)."""
    aside = DRILL_DIR / filename
    had_file = path.is_file()
    if had_file:
        write_atomic(aside, path.read_bytes(), like=path)
    save_json(DRILL_STATE, {**state, "backup": rel(aside), "had_file": had_file})


def keep_attempt(state, attempt):
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(state["started"]))
    write_atomic(ATTEMPTS / f"{state['id']}_{state['name']}.{stamp}.py", attempt)


def put_back(state, path):
    """Puts the learner's own file back where the drill's stub stands, then forgets the drill.

    Forgetting comes last: until then, running this again redoes the same steps."""
    aside = REPO / state["backup"]
    if state["had_file"]:
        if aside.is_file():
            write_atomic(path, aside.read_bytes(), like=aside)
    else:
        path.unlink(missing_ok=True)
    # The drill's grades went into last.json; what stands there again is the learner's own file.
    put_result(state["id"], state.get("last_entry"))
    DRILL_STATE.unlink()
    aside.unlink(missing_ok=True)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class Lock:
    """Held by the running drill or interview; free when none runs, or when it died."""

    def __init__(self, handle):
        self.handle = handle

    @classmethod
    def take(cls):
        """The lock, or None when a live drill holds it."""
        DRILL_DIR.mkdir(parents=True, exist_ok=True)
        handle = open(DRILL_LOCK, "a+")
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                return None
        else:
            state = drill_state()
            if state and state.get("pid") not in (None, os.getpid()) and pid_alive(state["pid"]):
                handle.close()
                return None
        return cls(handle)

    def release(self):
        if fcntl is not None:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
        self.handle.close()
