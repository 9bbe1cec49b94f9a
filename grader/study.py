"""Studying alone: hints, watch mode, timed drills, progress, reset and the reference.

    python -m grader.study hint NN [--level N]   the next hint (make hint EX=NN)
    python -m grader.study watch [NN]            grade on every save (make watch)
    python -m grader.study drill NN              a timed drill from a blank stub (make drill EX=NN)
    python -m grader.study drill-done            end a drill, put your own file back (make drill-done)
    python -m grader.study progress              status, best score, drill times (make progress)
    python -m grader.study reset NN              back to the stub, keeping a backup (make reset EX=NN)
    python -m grader.study solution NN [--force] the reference, once earned (make solution EX=NN)

Everything this keeps lives in .grade/ (git-ignored): the grader's last.json, history.json (best
scores and drill times), hints.json (which hints were shown), backups/ (from reset) and drill/
(the learner's own file while a drill runs, and past drill attempts).

A drill moves the learner's file aside before it puts a fresh stub in place, and puts it back on
full marks, on time's up, on Ctrl-C, on SIGTERM/SIGHUP and on `drill-done`. A drill that was
killed outright (SIGKILL, power loss) leaves .grade/drill/state.json behind, and the next command
of this tool, whatever it is, puts the file back. The drill holds a lock on .grade/drill/lock
while it runs: the lock, not a pid, tells a live drill from a dead one.

The fresh stub comes from git: the newest committed version of exercises/NN_name.py with the
most `raise NotImplementedError` (a learner's own commits only remove them), so it works in a
student copy of the template where the learner commits their work. It is cached in
.grade/pristine/ for when git is not at hand.

Hints live in exercises/hints/NN_name.md: `## 1`, `## 2`, `## 3` sections (a nudge, the idea
with shapes, near-code) and any number of `## when: <trigger>, <trigger>` sections. A trigger is
the key of a catalogued mistake (`no_max_subtracted`, as the grader's JSON names it in
`tests[].mistake`), the name of a hidden test (`test_rejects_heads_that_do_not_divide`), or the
status `broken` / `forbidden`. The first hint after each grade speaks to the mistake that grade
named first; with no named mistake, to the first failing test; never to a bare category.

Environment: STUDY_POLL (seconds between checks for a save, default 0.5), STUDY_DRILL_SECONDS
(the drill's time cap, default 1200).

This module imports no torch: the grading itself runs `python -m grader` in a child process.
"""
import argparse
import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .exercises import REPO, Exercise, UnknownExercise, find, with_stubs

try:
    import fcntl
except ImportError:          # Windows: a drill's liveness falls back to its pid
    fcntl = None

from .exercises import SOLUTIONS_DIR  # noqa: E402
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

LEVEL_NAMES = {1: "a nudge", 2: "the idea, with shapes", 3: "near-code"}


class Usage(Exception):
    """Bad input: exit status 2."""


class Problem(Exception):
    """The command cannot do what was asked: exit status 1."""


class Stop(Exception):
    """A signal asked a drill to stop."""


def poll_seconds():
    return max(0.02, float(os.environ.get("STUDY_POLL", "0.5")))


def drill_cap():
    return max(1.0, float(os.environ.get("STUDY_DRILL_SECONDS", str(20 * 60))))


def clock(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def rel(path):
    try:
        return str(Path(path).relative_to(REPO))
    except ValueError:
        return str(path)


# -- the exercises ---------------------------------------------------------------------------
def exercises():
    """Those with hidden tests, plus any stub in exercises/ whose tests are not written yet."""
    return with_stubs()


def pick(arg, command):
    if not arg:
        raise Usage(f"which exercise? give EX=NN, e.g. make {command} EX=05")
    try:
        return find(arg, exercises())
    except UnknownExercise as e:
        raise Usage(str(e)) from None


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


def last_results():
    return load_json(LAST, {})


def full_marks(entry):
    return bool(entry) and entry.get("max_score") and entry.get("score", 0) >= entry["max_score"]


# -- history: best scores and drills ---------------------------------------------------------
def history():
    return load_json(HISTORY, {})


def _slot(hist, ex_id):
    return hist.setdefault(ex_id, {"best": 0.0, "max": 10.0, "completed": None, "drills": []})


def note_result(hist, entry):
    """Folds one graded result (the grader's per-exercise JSON) into the history."""
    slot = _slot(hist, entry["id"])
    slot["max"] = entry.get("max_score", slot["max"])
    slot["best"] = max(slot["best"], float(entry.get("score", 0)))
    if full_marks(entry) and not slot["completed"]:
        slot["completed"] = entry.get("time", time.time())


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
    slot = _slot(hist, ex.id)
    slot["drills"].append({"started": started, "outcome": outcome, "seconds": seconds,
                           "score": score, "max_score": max_score, **extra})
    if score is not None:
        slot["best"] = max(slot["best"], float(score))
        if seconds is not None and not slot["completed"]:
            slot["completed"] = time.time()
    save_json(HISTORY, hist)
    return slot


def best_drill(slot):
    times = [d["seconds"] for d in slot.get("drills", []) if d.get("seconds") is not None]
    return min(times) if times else None


# -- the fresh stub --------------------------------------------------------------------------
def todo_count(source):
    """How many `raise NotImplementedError` a file holds: a stub has them all."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return source.count("raise NotImplementedError")
    n = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id == "NotImplementedError":
                n += 1
    return n


def git_versions(relpath, limit=200):
    """The committed versions of a file, newest first (empty without git)."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "LC_ALL": "C"}
    try:
        log = subprocess.run(["git", "log", f"-n{limit}", "--format=%H", "--", relpath], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=20)
        commits = log.stdout.split() if log.returncode == 0 else []
        if not commits:
            return []
        query = "".join(f"{c}:./{relpath}\n" for c in commits).encode()
        cat = subprocess.run(["git", "cat-file", "--batch"], cwd=REPO, env=env, input=query,
                             capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    out, pos, versions = cat.stdout, 0, []
    while pos < len(out):
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) == 3 and header[1] == b"blob":
            size = int(header[2])
            versions.append(out[pos:pos + size])
            pos += size + 1
    return versions


def pristine_stub(ex):
    """The untouched stub of an exercise, as bytes; Problem if none can be found."""
    best, best_n = None, 0
    for content in git_versions(f"exercises/{ex.filename}"):
        n = todo_count(content.decode("utf-8", "replace"))
        if n > best_n:                    # newest first: keep the newest of the most-TODO versions
            best, best_n = content, n
    cache = PRISTINE / ex.filename
    if best is not None:
        if not cache.is_file() or cache.read_bytes() != best:
            write_atomic(cache, best)
        return best
    if cache.is_file():
        return cache.read_bytes()
    raise Problem(f"cannot find a fresh stub for {ex.label}: exercises/{ex.filename} was never committed "
                  f"to git here (clone the course with git, or fetch that file again)")


# -- the drill's lock and its state ----------------------------------------------------------
def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class Lock:
    """Held by the running drill; free when no drill runs, or when the drill died."""

    def __init__(self, handle):
        self.handle = handle

    @classmethod
    def take(cls):
        DRILL_DIR.mkdir(parents=True, exist_ok=True)
        handle = open(DRILL_LOCK, "a+")
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                return None
        else:
            state = load_json(DRILL_STATE, None)
            if state and state.get("pid") not in (None, os.getpid()) and pid_alive(state["pid"]):
                handle.close()
                return None
        return cls(handle)

    def release(self):
        if fcntl is not None:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
        self.handle.close()


def begin_drill(ex, stub, started, cap):
    """Moves the learner's file aside, then puts the stub in place (in that order)."""
    path = ex.stub
    backup = DRILL_DIR / ex.filename
    had_file = path.is_file()
    if had_file:
        write_atomic(backup, path.read_bytes(), like=path)
    state = {"id": ex.id, "name": ex.name, "file": rel(path), "backup": rel(backup), "had_file": had_file,
             "started": started, "cap": cap, "pid": os.getpid(),
             "last_entry": last_results().get(ex.id)}
    save_json(DRILL_STATE, state)
    write_atomic(path, stub)


def end_drill():
    """Puts the learner's own file back; returns the drill's state (None if no drill was on)."""
    state = load_json(DRILL_STATE, None)
    if not state:
        return None
    path, backup = REPO / state["file"], REPO / state["backup"]
    if path.is_file():
        attempt = path.read_bytes()
        if attempt != _maybe_stub(state):        # keep what was written, not an untouched stub
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(state["started"]))
            write_atomic(ATTEMPTS / f"{state['id']}_{state['name']}.{stamp}.py", attempt)
    if state["had_file"]:
        if backup.is_file():
            write_atomic(path, backup.read_bytes(), like=backup)
    else:
        path.unlink(missing_ok=True)
    # The drill's grades went into last.json; what stands there again is the learner's own file.
    results = last_results()
    if state.get("last_entry"):
        results[state["id"]] = state["last_entry"]
    else:
        results.pop(state["id"], None)
    save_json(LAST, results)
    DRILL_STATE.unlink()          # last: until here, running this again redoes the same steps
    backup.unlink(missing_ok=True)
    return state


def _maybe_stub(state):
    cache = PRISTINE / f"{state['id']}_{state['name']}.py"
    return blank_of(cache.read_bytes()) if cache.is_file() else None


def blank_of(stub):
    """The blank-file stub (grader/blank.py) derived from a narrated stub's bytes."""
    from .blank import blank_stub
    try:
        return blank_stub(stub.decode("utf-8")).encode("utf-8")
    except (SyntaxError, ValueError, UnicodeDecodeError):
        return stub


def recover():
    """If a drill died without putting the learner's file back, puts it back now."""
    if not DRILL_STATE.exists():
        return
    lock = Lock.take()
    if lock is None:
        return                    # a live drill holds it
    try:
        state = end_drill()
    finally:
        lock.release()
    if state:
        ex = Exercise.named(state["id"], state["name"])
        record_drill(ex, state["started"], "interrupted", None, None, None)
        when = time.strftime("%H:%M", time.localtime(state["started"]))
        print(f"Put your own {state['file']} back: the drill started at {when} was cut short.", flush=True)


# -- grading ---------------------------------------------------------------------------------
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
    STATE_DIR.mkdir(exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".study.", suffix=".json", dir=STATE_DIR)
    os.close(fd)
    try:
        subprocess.run([sys.executable, "-m", "grader", ex.id, "--narrate", "--json", tmp], cwd=REPO,
                       env={**os.environ, "GRADER_ON_SAVE": "1"})    # the report says "save", not "make grade"
        report = load_json(tmp, None)
    finally:
        Path(tmp).unlink(missing_ok=True)
    entry = None
    if report:
        entry = next((e for e in report.get("exercises", []) if e.get("id") == ex.id), None)
    if entry:
        hist = history()
        note_result(hist, entry)
        save_json(HISTORY, hist)
    return entry


def signature(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


# -- watch -----------------------------------------------------------------------------------
def next_unfinished(graded, after, results):
    """The next exercise after `after` (wrapping round) without full marks; None if all have them."""
    ids = [e.id for e in graded]
    start = ids.index(after.id) + 1 if after in graded else 0
    for e in graded[start:] + graded[:start]:
        if e is not after and not full_marks(results.get(e.id)):
            return e
    return None


def watch(start):
    graded = [e for e in exercises() if e.graded]
    if not graded:
        raise Problem("no exercise has hidden tests yet: nothing to grade")
    if start is not None and not start.graded:
        raise Problem(f"{start.label} has no hidden tests yet: nothing to grade")
    results = last_results()
    current = start or next((e for e in graded if not full_marks(results.get(e.id))), graded[0])
    screen = Screen()
    poll = poll_seconds()
    seen = {e.id: signature(e.stub) for e in graded}

    def show(ex):
        nonlocal current
        screen.clear()
        screen.line(f"Watching exercises/  (grading {ex.label} on save)   {time.strftime('%H:%M:%S')}")
        screen.line()
        entry = grade(ex, screen)
        screen.line()
        current = ex
        if full_marks(entry):
            nxt = next_unfinished(graded, ex, last_results())
            if nxt is None:
                screen.line(f"{ex.label}: full marks. Every exercise has full marks now: "
                            f"time yourself with make drill EX={ex.id}.")
            else:
                screen.line(f"{ex.label}: full marks. Next up: {nxt.label}: open exercises/{nxt.filename}; "
                            f"it is graded each time you save it.")
                current = nxt
        elif entry is None:
            screen.line("The grader did not report on this file (see above).")
        screen.line(f"Save exercises/{current.filename} to grade it. Ctrl-C stops watching.")

    try:
        show(current)
        while True:
            time.sleep(poll)
            changed = []
            for e in graded:
                sig = signature(e.stub)
                if sig != seen[e.id]:
                    seen[e.id] = sig
                    changed.append(e)
            if changed:
                time.sleep(min(poll, 0.2))                     # let the editor finish writing
                for e in changed:
                    seen[e.id] = signature(e.stub)
                show(current if current in changed else changed[0])
    except KeyboardInterrupt:
        screen.line()
        screen.line("Stopped watching.")
    return 0


# -- drill -----------------------------------------------------------------------------------
STOP_SIGNALS = [s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP")) if s]


def _stop(signum, frame):
    raise Stop(signal.Signals(signum).name)


def drill(ex, cap):
    if not ex.graded:
        raise Problem(f"{ex.label} has no hidden tests yet: nothing to drill against")
    stub = blank_of(pristine_stub(ex))     # drills start from the blank-file stub
    lock = Lock.take()
    if lock is None:
        state = load_json(DRILL_STATE, {})
        raise Problem(f"a drill on {state.get('id', '?')} is running already (pid {state.get('pid', '?')}): "
                      f"finish it, or end it with make drill-done")
    screen = Screen()
    previous = {s: signal.signal(s, _stop) for s in STOP_SIGNALS}
    started = time.time()
    outcome, seconds, score, max_score = "stopped", None, None, None
    try:
        begin_drill(ex, stub, started, cap)
        outcome, seconds, score, max_score = drill_loop(ex, started, cap, screen)
    except Stop as why:
        outcome = "stopped" if why.args[0] != "SIGHUP" else "interrupted"
    finally:
        while True:                      # a signal landing here only makes it start over: end_drill
            try:                         # can run any number of times
                for s in STOP_SIGNALS:
                    signal.signal(s, signal.SIG_IGN)
                end_drill()
                break
            except Stop:
                continue
        lock.release()
        for s, handler in previous.items():
            signal.signal(s, handler)
    slot = record_drill(ex, started, outcome, seconds, score, max_score, stub="blank")
    screen.line()
    if seconds is not None:
        best = best_drill(slot)
        note = "a new best" if best == seconds else f"best {clock(best)}"
        screen.line(f"Full marks on {ex.label} in {clock(seconds)} ({note}).")
    elif outcome == "time's up":
        screen.line(f"Time's up: {clock(cap)} on {ex.label}, {score or 0:g}/{max_score or 10:g} at the last save.")
    else:
        screen.line(f"Drill on {ex.label} stopped after {clock(time.time() - started)}.")
    screen.line(f"Your own exercises/{ex.filename} is back. This attempt is kept in {rel(ATTEMPTS)}/.")
    return 0


def drill_loop(ex, started, cap, screen):
    poll = poll_seconds()
    path = ex.stub
    seen = signature(path)
    score, max_score = None, None
    deadline = started + cap

    def header():
        screen.clear()
        screen.line(f"DRILL {ex.label}: a blank stub (the contract, no steps) is in exercises/{ex.filename}. "
                    f"Clock started {time.strftime('%H:%M:%S', time.localtime(started))}, cap {clock(cap)}.")
        screen.line("Every save is graded. Ctrl-C (or make drill-done) ends the drill and puts your own file back.")
        screen.line()

    header()
    screen.line("Write it from memory, narrating the shapes. Go.")
    shown = None
    while True:
        now = time.time()
        if now >= deadline:
            return "time's up", None, score, max_score
        tick = int(now - started)
        if tick != shown:
            shown = tick
            screen.status(f"drill {ex.id}  {clock(now - started)} / {clock(cap)}"
                          + (f"   last save {score:g}/{max_score:g}" if score is not None else ""))
        time.sleep(min(poll, max(0.0, deadline - now)))
        sig = signature(path)
        if sig == seen:
            continue
        time.sleep(min(poll, 0.2))
        sig = signature(path)
        seen = sig
        saved_at = os.path.getmtime(path) if sig else time.time()
        header()
        entry = grade(ex, screen)
        if entry:
            score, max_score = entry["score"], entry["max_score"]
        if full_marks(entry):
            return "full marks", max(0.0, min(saved_at, time.time()) - started), score, max_score
        screen.line()
        screen.line(f"Not yet, at {clock(saved_at - started)}. Keep going: save to grade again.")
        shown = None


def drill_done():
    state = load_json(DRILL_STATE, None)
    if not state:
        print("No drill is running: nothing to put back.")
        return 0
    lock = Lock.take()
    if lock is not None:              # its process is gone
        lock.release()
        recover()
        return 0
    pid = state.get("pid")
    try:
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, TypeError):
        pass
    for _ in range(200):             # up to 10 s to put the file back
        if not DRILL_STATE.exists():
            print(f"Drill on {state['id']} ended: your own {state['file']} is back.")
            return 0
        time.sleep(0.05)
    try:
        os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))
    except ProcessLookupError:
        pass
    time.sleep(0.5)
    recover()
    if DRILL_STATE.exists():
        raise Problem(f"the drill (pid {pid}) does not stop; your file is in {state['backup']}")
    return 0


# -- hints -----------------------------------------------------------------------------------
HEADING = re.compile(r"^##\s+(.*?)\s*$")


def parse_hints(text):
    """{1: text, 2: text, 3: text} and [(when, text)] from a hint file's `## ...` sections."""
    levels, whens, current, body = {}, [], None, []

    def flush():
        if current is not None:
            content = "\n".join(body).strip()
            if isinstance(current, int):
                levels[current] = content
            else:
                whens.append((current[1], content))

    for line in text.splitlines():
        m = HEADING.match(line)
        if m:
            flush()
            title, body = m.group(1), []
            w = re.match(r"when\s*:\s*(.+)$", title, re.I)
            lv = re.match(r"(?:level\s*)?([1-3])\b", title, re.I)
            current = ("when", w.group(1).strip()) if w else (int(lv.group(1)) if lv else None)
        elif current is not None:
            body.append(line)
    flush()
    return levels, whens


def failure_signals(entry):
    """What the last grade failed on, in the order a hint should speak to it: (rank, what, trigger).

    rank 0: the file is forbidden or broken; 1: the mistakes the grade named, first failing test first;
    2: the failing tests themselves (those that failed before those not checked), by name.
    """
    status = (entry or {}).get("status", "")
    if not entry or full_marks(entry) or status in ("not started", "missing"):
        return []     # nothing written yet: a failure to speak to would be noise
    signals = []
    if status in ("forbidden", "broken"):
        signals.append((0, status, status))
    failing = [t for t in entry.get("tests", []) if not t.get("passed")]
    for t in failing:
        if t.get("mistake"):
            signals.append((1, f"{t.get('description') or t.get('name', '')} (the known mistake "
                               f"`{t['mistake']}`)", t["mistake"]))
    order = sorted(failing, key=lambda t: t.get("status") == "not checked")
    for t in order:
        signals.append((2, t.get("description") or t.get("name", ""), t.get("name", "")))
    return signals


def triggers(when):
    return [w.strip().lower() for w in when.split(",") if w.strip()]


def targeted(whens, entry):
    """The `## when:` sections that speak to the last grade's failures, in the order of the signals."""
    hits = []
    for position, (rank, what, trigger) in enumerate(failure_signals(entry)):
        for order, (key, text) in enumerate(whens):
            if trigger.lower() in triggers(key) and all(h[2] != key for h in hits):
                hits.append((position, order, key, what, text))
    return hits


def hint(ex, level=None):
    if not ex.hints.is_file():
        raise Problem(f"no hints written for {ex.label} yet ({rel(ex.hints)} is missing)")
    levels, whens = parse_hints(ex.hints.read_text())
    if not levels:
        raise Problem(f"{rel(ex.hints)} has no '## 1', '## 2', '## 3' sections")
    top = max(levels)
    entry = last_results().get(ex.id)
    state = load_json(HINT_STATE, {})
    mine = state.setdefault(ex.id, {"level": 0, "shown": []})
    out = []
    if entry and ex.stub.is_file() and entry.get("time") and os.path.getmtime(ex.stub) > entry["time"] + 1:
        out.append(f"(Your file changed after its last grade: make grade EX={ex.id} first, "
                   f"so that the hints know what it gets wrong now.)")
    graded_at = str(entry.get("time", "")) if entry else ""
    already = any(s.endswith("@" + graded_at) for s in mine["shown"])
    if level is None and not already:
        # The first hint after each grade speaks to its most telling failure, if a section names
        # it; the next ones step up through the levels. A new grade starts this again.
        hits = targeted(whens, entry)
        for rank, order, key, what, text in hits[:1]:
            tag = f"{key}@{graded_at}"
            mine["shown"] = [tag]
            score = f"{entry.get('score', 0):g}/{entry.get('max_score', 10):g}"
            out += [f"Hint for {ex.label}, about your last grade ({score}), which failed on: {what}", "", text, ""]
            others = list(dict.fromkeys(h[3] for h in hits[1:] if h[3] != what))
            if others:
                out.append("It also failed on: " + "; ".join(others[:3]) + ".")
            nxt = min(mine["level"] + 1, top)
            out.append(f"make hint EX={ex.id} again gives hint {nxt} of {top} ({LEVEL_NAMES.get(nxt, 'more')}).")
            save_json(HINT_STATE, state)
            print("\n".join(out))
            return 0
    n = level if level is not None else min(mine["level"] + 1, top)
    if n not in levels:
        raise Usage(f"no hint level {n} for {ex.label}: it has {', '.join(map(str, sorted(levels)))}")
    mine["level"] = max(mine["level"], n)
    if full_marks(entry):
        out.append(f"(You have full marks on {ex.label} already.)")
    out += [f"Hint {n} of {top} for {ex.label} ({LEVEL_NAMES.get(n, 'more')}):", "", levels[n], ""]
    if n < top:
        out.append(f"Still stuck? make hint EX={ex.id} again gives hint {n + 1} of {top}.")
    else:
        out.append(f"That was the last hint. Read {rel(ex.reading)}; the reference is "
                   f"make solution EX={ex.id} (after full marks, or with FORCE=1).")
    save_json(HINT_STATE, state)
    print("\n".join(out))
    return 0


# -- progress --------------------------------------------------------------------------------
def trend(slot):
    drills = slot.get("drills", [])[-5:]
    if not drills:
        return ""
    marks = [clock(d["seconds"]) if d.get("seconds") is not None else "✗" for d in drills]
    times = [d["seconds"] for d in slot.get("drills", []) if d.get("seconds") is not None]
    arrow = ""
    if len(times) >= 2:
        arrow = "  faster" if times[-1] < times[-2] else ("  slower" if times[-1] > times[-2] else "  same")
    return " → ".join(marks) + arrow


def progress():
    results = last_results()
    hist = history()
    drilling = load_json(DRILL_STATE, {}).get("id")
    known = exercises()
    width = max([len(e.name) for e in known] + [8])
    from .interview import progress_columns, progress_footer    # blank-file drills and interviews
    rows = [f"  NN {'exercise':<{width}}  {'status':<15} {'blank':<5} {'median':>6}  {'best':>6}  {'best drill':>10}  "
            f"drills (oldest → newest)"]
    done = points = top = 0
    for e in known:
        slot = hist.get(e.id, {})
        entry = results.get(e.id)
        if e.id == drilling:
            status = "in a drill"
        elif not e.graded:
            status = "no tests yet"
        elif entry:
            status = entry.get("status", "graded")
        else:
            status = "not graded"
        best = slot.get("best")
        max_score = slot.get("max", 10.0)
        if best is not None and best >= max_score and status not in ("complete", "in a drill"):
            status = "had full marks"      # the header counts best scores: the row says so too
        top += max_score
        if best is not None:
            points += best
            done += best >= max_score
        bd = best_drill(slot) if slot else None
        rows.append(f"  {e.id} {e.name:<{width}}  {status:<15} {progress_columns(slot)}  "
                    f"{(f'{best:.1f}' if best is not None else '—'):>6}  "
                    f"{(clock(bd) if bd is not None else '—'):>10}  {trend(slot) if slot else ''}".rstrip())
    n = len(known)
    filled = round(20 * done / n) if n else 0
    drills = sum(len(s.get("drills", [])) for s in hist.values())
    print(f"Progress  {'█' * filled}{'·' * (20 - filled)}  {done}/{n} with full marks (best) · "
          f"{points:.1f}/{top:g} best points · {drills} drill{'s' * (drills != 1)}")
    print()
    print("\n".join(rows))
    for line in progress_footer():
        print(line)
    nxt = next((e for e in known if e.graded and not full_marks(results.get(e.id))), None)
    print()
    if nxt:
        print(f"Next: exercises/{nxt.filename} (make watch grades it on every save; make hint EX={nxt.id} helps).")
    else:
        print("Every exercise has full marks. Drill them against the clock: make drill EX=10.")
    return 0


# -- reset and solution ----------------------------------------------------------------------
def reset(ex):
    state = load_json(DRILL_STATE, None)
    if state:
        raise Problem(f"a drill on {state['id']} is running: end it first (make drill-done)")
    stub = pristine_stub(ex)
    path = ex.stub
    saved = None
    if path.is_file():
        if path.read_bytes() == stub:
            print(f"exercises/{ex.filename} is the fresh stub already: nothing to reset.")
            return 0
        stamp = time.strftime("%Y%m%d-%H%M%S")
        saved = BACKUPS / f"{ex.id}_{ex.name}.{stamp}.py"
        n = 1
        while saved.exists():
            n += 1
            saved = BACKUPS / f"{ex.id}_{ex.name}.{stamp}-{n}.py"
        BACKUPS.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, saved)
    write_atomic(path, stub)
    results = last_results()
    if results.pop(ex.id, None) is not None:     # that grade was of the file now gone
        save_json(LAST, results)
    hints = load_json(HINT_STATE, {})
    if hints.pop(ex.id, None) is not None:
        save_json(HINT_STATE, hints)
    print(f"exercises/{ex.filename} is the fresh stub again."
          + (f" Your version is kept in {rel(saved)}." if saved else ""))
    return 0


def solution(ex, force):
    if not SOLUTIONS_DIR.is_dir():
        raise Problem("this copy has no solutions/ folder (a student copy ships without the references): "
                      "there is no reference to show here")
    if not ex.solution.is_file():
        raise Problem(f"there is no reference for {ex.label} here (solutions/{ex.filename} is missing)")
    entry = last_results().get(ex.id)
    earned = full_marks(entry) or bool(history().get(ex.id, {}).get("completed"))
    if not earned and not force:
        last = f"your last grade: {entry.get('score', 0):g}/{entry.get('max_score', 10):g}" if entry else "not graded yet"
        raise Problem(f"not yet: the reference for {ex.id} opens once you have full marks ({last}); "
                      f"make hint EX={ex.id} helps, and make solution EX={ex.id} FORCE=1 shows it anyway")
    hist = history()
    slot = _slot(hist, ex.id)
    slot.setdefault("solution_seen", []).append({"time": time.time(), "forced": not earned})
    save_json(HISTORY, hist)
    print(f"# solutions/{ex.filename}" + ("" if earned else "  (shown before full marks, as asked)"))
    print()
    print(ex.solution.read_text(), end="")
    return 0


# -- the command line ------------------------------------------------------------------------
class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise Usage(message)


def parse(argv):
    parser = Parser(prog="python -m grader.study", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    for name in ("hint", "watch", "drill", "reset", "solution"):
        p = sub.add_parser(name)
        p.add_argument("exercise", nargs="?", default="")
        if name == "hint":
            p.add_argument("--level", type=int, choices=(1, 2, 3))
        if name == "solution":
            p.add_argument("--force", action="store_true")
    sub.add_parser("drill-done")
    sub.add_parser("progress")
    sub.add_parser("recover")
    args = parser.parse_args(argv)
    if not args.command:
        raise Usage("give a command: hint, watch, drill, drill-done, progress, reset or solution")
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv and not argv[0].startswith("-") else "study"
    try:
        args = parse(argv)
        command = args.command
        if command in ("hint", "drill", "reset", "solution"):
            ex = pick(args.exercise, command)
        elif command == "watch":
            ex = pick(args.exercise, command) if args.exercise else None
        recover()
        fold_last()
        if command == "hint":
            return hint(ex, args.level)
        if command == "watch":
            return watch(ex)
        if command == "drill":
            return drill(ex, drill_cap())
        if command == "drill-done":
            return drill_done()
        if command == "progress":
            return progress()
        if command == "reset":
            return reset(ex)
        if command == "solution":
            return solution(ex, args.force)
        return 0                  # recover: done above
    except Usage as e:
        print(f"{command}: {e}", file=sys.stderr)
        return 2
    except Problem as e:
        print(f"{command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
