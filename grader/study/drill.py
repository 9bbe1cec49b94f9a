"""Timed drills from a blank stub: make drill EX=NN, make drill-done.

A drill moves the learner's file aside before it puts a fresh stub in place, and puts it back on
full marks, on time's up, on Ctrl-C, on SIGTERM/SIGHUP and on `drill-done`. A drill that was
killed outright (SIGKILL, power loss) leaves .grade/drill/state.json behind, and the next command
of the study tools (or the grader), whatever it is, puts the file back. The drill holds a lock on
.grade/drill/lock while it runs: the lock, not a pid, tells a live drill from a dead one. The mock
interview (grader/interview.py) keeps the learner's files the same way, with these functions.

Environment: STUDY_DRILL_SECONDS (the drill's time cap, default 1200).
"""
import os
import signal
import time

from ..exercises import REPO, Exercise
from ..report import full_marks_words
from ..status import Outcome
from . import state
from .errors import Problem, Stop
from .grading import Screen, clock, grade, poll_seconds, signature
from .state import Lock, full_marks, rel
from .stubs import blank_of, pristine_stub

STOP_SIGNALS = [s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP")) if s]


def drill_cap():
    return max(1.0, float(os.environ.get("STUDY_DRILL_SECONDS", str(20 * 60))))


def stop(signum, frame):
    """The signal handler while a drill runs: ends it through Stop, so the file goes back."""
    raise Stop(signal.Signals(signum).name)


def outcome_of(why):
    """The outcome of a drill that a signal stopped."""
    return Outcome.STOPPED if why.args[0] != "SIGHUP" else Outcome.INTERRUPTED


# -- the learner's file aside, and back ------------------------------------------------------
def begin_drill(ex, stub, started, cap):
    """Moves the learner's file aside, then puts the stub in place (in that order)."""
    state.set_aside(ex.stub, ex.filename,
                    {"id": ex.id, "name": ex.name, "file": rel(ex.stub), "started": started, "cap": cap,
                     "pid": os.getpid(), "last_entry": state.last_results().get(ex.id)})
    state.write_atomic(ex.stub, stub)


def end_drill():
    """Puts the learner's own file back; returns the drill's state (None if no drill was on)."""
    drill = state.drill_state()
    if not drill:
        return None
    path = REPO / drill["file"]
    if path.is_file():
        attempt = path.read_bytes()
        if attempt != untouched_stub(drill):        # keep what was written, not an untouched stub
            state.keep_attempt(drill, attempt)
    state.put_back(drill, path)
    return drill


def untouched_stub(drill):
    cached = state.cached_stub(f"{drill['id']}_{drill['name']}.py")
    return blank_of(cached) if cached is not None else None


def end_drill_whatever_happens():
    """end_drill, started over if a signal lands in it (it can run any number of times)."""
    while True:
        try:
            for s in STOP_SIGNALS:
                signal.signal(s, signal.SIG_IGN)
            end_drill()
            return
        except Stop:
            continue


def recover():
    """If a drill died without putting the learner's file back, puts it back now."""
    if not state.drill_running():
        return
    lock = Lock.take()
    if lock is None:
        return                    # a live drill holds it
    try:
        drill = end_drill()
    finally:
        lock.release()
    if drill:
        ex = Exercise.named(drill["id"], drill["name"])
        state.record_drill(ex, drill["started"], Outcome.INTERRUPTED, None, None, None)
        when = time.strftime("%H:%M", time.localtime(drill["started"]))
        print(f"Put your own {drill['file']} back: the drill started at {when} was cut short.", flush=True)


def already_running():
    drill = state.drill_state({})
    return Problem(f"a drill on {drill.get('id', '?')} is running already (pid {drill.get('pid', '?')}): "
                   f"finish it, or end it with make drill-done")


# -- the drill -------------------------------------------------------------------------------
def drill(ex, cap):
    if not ex.graded:
        raise Problem(f"{ex.label} has no hidden tests yet: nothing to drill against")
    stub = blank_of(pristine_stub(ex))     # drills start from the blank-file stub
    lock = Lock.take()
    if lock is None:
        raise already_running()
    screen = Screen()
    previous = {s: signal.signal(s, stop) for s in STOP_SIGNALS}
    started = time.time()
    outcome, seconds, score, max_score = Outcome.STOPPED, None, None, None
    try:
        begin_drill(ex, stub, started, cap)
        outcome, seconds, score, max_score = drill_loop(ex, started, cap, screen)
    except Stop as why:
        outcome = outcome_of(why)
    finally:
        end_drill_whatever_happens()
        lock.release()
        for s, handler in previous.items():
            signal.signal(s, handler)
    record = state.record_drill(ex, started, outcome, seconds, score, max_score, stub="blank")
    screen.line()
    if seconds is not None:
        best = state.best_drill(record)
        note = "a new best" if best == seconds else f"best {clock(best)}"
        screen.line(f"{full_marks_words().capitalize()} on {ex.label} in {clock(seconds)} ({note}).")
    elif outcome == Outcome.TIMES_UP:
        screen.line(f"Time's up: {clock(cap)} on {ex.label}, {score or 0:g}/{max_score or 10:g} at the last save.")
    else:
        screen.line(f"Drill on {ex.label} stopped after {clock(time.time() - started)}.")
    screen.line(f"Your own exercises/{ex.filename} is back. This attempt is kept in {rel(state.ATTEMPTS)}/.")
    return 0


def drill_loop(ex, started, cap, screen):
    """Grades every save until full marks or the cap: (outcome, seconds, score, max_score)."""
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
            return Outcome.TIMES_UP, None, score, max_score
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
            return Outcome.FULL_MARKS, max(0.0, min(saved_at, time.time()) - started), score, max_score
        screen.line()
        screen.line(f"Not yet, at {clock(saved_at - started)}. Keep going: save to grade again.")
        shown = None


def drill_done():
    drill = state.drill_state()
    if not drill:
        print("No drill is running: nothing to put back.")
        return 0
    lock = Lock.take()
    if lock is not None:              # its process is gone
        lock.release()
        recover()
        return 0
    pid = drill.get("pid")
    try:
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, TypeError):
        pass
    for _ in range(200):             # up to 10 s to put the file back
        if not state.drill_running():
            print(f"Drill on {drill['id']} ended: your own {drill['file']} is back.")
            return 0
        time.sleep(0.05)
    try:
        os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))
    except ProcessLookupError:
        pass
    time.sleep(0.5)
    recover()
    if state.drill_running():
        raise Problem(f"the drill (pid {pid}) does not stop; your file is in {drill['backup']}")
    return 0

