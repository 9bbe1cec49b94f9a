"""Grading on every save: make watch [EX=NN]. It moves on to the next exercise at full marks."""
import time

from ..exercises import with_stubs
from ..report import full_marks_words, public_only
from .errors import Problem
from .grading import Screen, grade, poll_seconds, signature
from .state import full_marks, last_results


def next_unfinished(graded, after, results):
    """The next exercise after `after` (wrapping round) without full marks; None if all have them."""
    ids = [e.id for e in graded]
    start = ids.index(after.id) + 1 if after in graded else 0
    for e in graded[start:] + graded[:start]:
        if e is not after and not full_marks(results.get(e.id)):
            return e
    return None


def watch(start):
    graded = [e for e in with_stubs() if e.graded]
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
            done = full_marks_words()
            if nxt is None:
                every = "passes its public tests" if public_only() else "has full marks"
                screen.line(f"{ex.label}: {done}. Every exercise {every} now: "
                            f"time yourself with make drill EX={ex.id}.")
            else:
                screen.line(f"{ex.label}: {done}. Next up: {nxt.label}: open exercises/{nxt.filename}; "
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
                time.sleep(min(poll, 0.05))                    # let the editor finish writing
                for e in changed:
                    seen[e.id] = signature(e.stub)
                show(current if current in changed else changed[0])
    except KeyboardInterrupt:
        screen.line()
        screen.line("Stopped watching.")
    return 0
