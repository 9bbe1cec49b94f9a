"""The next hint: make hint EX=NN [LEVEL=N].

Hints live in exercises/hints/NN_name.md: `## 1`, `## 2`, `## 3` sections (a nudge, the idea
with shapes, near-code) and any number of `## when: <trigger>, <trigger>` sections. A trigger is
the key of a catalogued mistake (`no_max_subtracted`, as the grader's JSON names it in
`tests[].mistake`), the name of a hidden test (`test_rejects_heads_that_do_not_divide`), or the
status `broken` / `forbidden`. The first hint after each grade speaks to the mistake that grade
named first; with no named mistake, to the first failing test; never to a bare category.
"""
import os
import re

from ..status import Status, TestStatus
from . import state
from .errors import Problem, Usage
from .state import full_marks, rel

LEVEL_NAMES = {1: "a nudge", 2: "the idea, with shapes", 3: "near-code"}
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
    """What the last grade failed on, in the order a hint should speak to it: (rank, what, trigger, test).

    rank 0: the file is forbidden or broken; 1: the mistakes the grade named, first failing test first;
    2: the tests that failed, by name. A test that was not checked (a crash or a wrong value stopped it
    before its own property) is no failure of that property: it gives no signal.
    """
    status = (entry or {}).get("status", "")
    if not entry or full_marks(entry) or status in (Status.NOT_STARTED, Status.MISSING):
        return []     # nothing written yet: a failure to speak to would be noise
    signals = []
    if status in (Status.FORBIDDEN, Status.BROKEN):
        signals.append((0, status, status, ""))
    failing = [t for t in entry.get("tests", []) if not t.get("passed")]
    for t in failing:
        if t.get("mistake"):
            signals.append((1, f"{t.get('description') or t.get('name', '')} (the known mistake "
                               f"`{t['mistake']}`)", t["mistake"], t.get("name", "")))
    for t in failing:
        if t.get("status") != TestStatus.NOT_CHECKED:
            signals.append((2, t.get("description") or t.get("name", ""), t.get("name", ""), t.get("name", "")))
    return signals


def triggers(when):
    return [w.strip().lower() for w in when.split(",") if w.strip()]


def targeted(whens, entry):
    """The `## when:` sections that speak to the last grade's failures, in the order of the signals:
    (position, order, key, what, text, test)."""
    hits = []
    for position, (rank, what, trigger, test) in enumerate(failure_signals(entry)):
        for order, (key, text) in enumerate(whens):
            if trigger.lower() in triggers(key) and all(h[2] != key for h in hits):
                hits.append((position, order, key, what, text, test))
    return hits


# What a crash's message says, in words a learner can act on: (pattern of the error, its usual cause).
CRASH_CAUSES = (
    (r"the grader does not allow|this exercise is NumPy only",
     "The grader refused a helper this exercise forbids (or, in a NumPy-only exercise, any torch call): "
     "build that step from elementary operations. The stub's \"Forbidden in this file\" says what is out."),
    (r"must match the size of tensor b|shapes? .* (cannot be )?broadcast",
     "Two tensors whose shapes do not broadcast meet in one operation. A reduction (sum, amax, mean) without "
     "keepdim=True drops its axis, so its result no longer lines up with the tensor it came from; a transpose or "
     "view can leave an axis in the wrong place. Print both operands' shapes on that line."),
    (r"desired ordering of dimensions|number of dims don't match in permute",
     "`permute` names every axis, so it fits one number of axes only. Use negative indices "
     "(x.transpose(-2, -1)) so that any number of leading axes works."),
    (r"mat1 and mat2|cannot be multiplied|Expected size for first two dimensions of batch2|size mismatch",
     "A matrix product whose inner sizes differ: the last axis of the left operand must equal the second-to-last "
     "of the right one. Check which axes you transposed."),
    (r"view size is not compatible|use \.reshape",
     "`view` needs a contiguous tensor: after a transpose, use .reshape (or .contiguous().view)."),
    (r"is invalid for input of size",
     "A view or reshape asked for a shape whose sizes do not multiply to the tensor's element count."),
    (r"Dimension out of range|dim(ension)? .* out of range",
     "An axis index past the tensor's number of axes: count the axes of the tensor on that line."),
    (r"expected (scalar type|m1 and m2 to have the same dtype)|dtype",
     "Two dtypes meet in one operation: keep the input's dtype (or cast one operand to the other's)."),
    (r"out of bounds|index .* is out of",
     "An index past the end of an axis: check the slice or the loop's bounds against the axis's size."),
)


def crash_cause(message):
    """The usual cause of a crash, from its message."""
    for pattern, cause in CRASH_CAUSES:
        if re.search(pattern, message, re.I):
            return cause
    return "Read the line and the error: they say which operation failed and on what. Print the shapes and " \
           "dtypes of its operands."


def stopped(entry):
    """The first test the code crashed or ran too long in, or None."""
    for t in (entry or {}).get("tests", []):
        if not t.get("passed") and t.get("kind") in ("raised", "crashed", "timeout"):
            return t
    return None


def crash_hint(ex, entry, t):
    """The first hint after a grade whose code crashed or ran too long: its line and its cause."""
    score = f"{entry.get('score', 0):g}/{entry.get('max_score', 10):g}"
    message = t.get("message", "")
    first, _, where = message.partition("\n")
    where = where.strip()
    if t.get("kind") == "timeout":
        return [f"Hint for {ex.label}, about your last grade ({score}): too slow in \u201c{t.get('description')}\u201d.",
                "", f"  {first}", "",
                "Too slow: a loop that grows with the input's sizes, one Python step per query, key or element, "
                "cannot finish on the larger inputs. Keep Python loops to blocks or heads and let tensor "
                "operations (@, sum, amax over an axis) do the work inside them."]
    said = first.removeprefix("your code raised ").strip()
    return [f"Hint for {ex.label}, about your last grade ({score}): your code crashed in "
            f"\u201c{t.get('description')}\u201d.", ""] + ([f"  {where}"] if where else []) + [
            f"  {said}", "", "Cause: " + crash_cause(said)]


def focus_of(entry, hits):
    """What the first hint after a grade speaks to, as the key its level is kept under: a named mistake or
    status, else a crash or timeout (its test), else a failed test; "" when nothing failed."""
    signals = failure_signals(entry)
    if hits and signals[hits[0][0]][0] <= 1:
        return hits[0][2], hits[0]
    crash = stopped(entry) if entry and not full_marks(entry) else None
    if crash is not None:
        return f"{crash.get('kind')}:{crash.get('name')}", crash
    if hits:
        return hits[0][2], hits[0]
    if signals:
        return signals[0][2], None
    return "", None


def hint(ex, level=None):
    if not ex.hints.is_file():
        raise Problem(f"no hints written for {ex.label} yet ({rel(ex.hints)} is missing)")
    levels, whens = parse_hints(ex.hints.read_text())
    if not levels:
        raise Problem(f"{rel(ex.hints)} has no '## 1', '## 2', '## 3' sections")
    top = max(levels)
    entry = state.last_results().get(ex.id)
    shown = state.hint_state()
    mine = shown.setdefault(ex.id, {"shown": []})
    out = []
    if entry and ex.stub.is_file() and entry.get("time") and os.path.getmtime(ex.stub) > entry["time"] + 1:
        out.append(f"(Your file changed after its last grade: make grade EX={ex.id} first, "
                   f"so that the hints know what it gets wrong now.)")
    hits = targeted(whens, entry)
    focus, spoken = focus_of(entry, hits)
    # Levels are kept per failure (a mistake's key, a test): a new failure starts again at hint 1.
    reached = mine.setdefault("levels", {})
    graded_at = str(entry.get("time", "")) if entry else ""
    already = any(s.endswith("@" + graded_at) for s in mine["shown"])
    if level is None and not already and spoken is not None:
        # The first hint after each grade speaks to its most telling failure; the next ones step up
        # through the levels. A new grade starts this again.
        mine["shown"] = [f"{focus}@{graded_at}"]
        if isinstance(spoken, dict):
            out += crash_hint(ex, entry, spoken) + [""]
            said, keys = {spoken.get("name")}, set()
        else:
            score = f"{entry.get('score', 0):g}/{entry.get('max_score', 10):g}"
            out += [f"Hint for {ex.label}, about your last grade ({score}), which failed on: {spoken[3]}", "",
                    spoken[4], ""]
            said, keys = {spoken[5]}, {spoken[2].lower()}
        others = []
        for rank, what, trigger, test in failure_signals(entry):
            # each test and each mistake once, and never the one just spoken of
            if rank > 0 and test not in said and trigger.lower() not in keys:
                said.add(test)
                keys.add(trigger.lower() if rank == 1 else "")
                others.append(what)
        if others:
            out.append("It also failed on: " + "; ".join(others[:3]) + ".")
        nxt = min(reached.get(focus, 0) + 1, top)
        out.append(f"make hint EX={ex.id} again gives hint {nxt} of {top} ({LEVEL_NAMES.get(nxt, 'more')}).")
        state.save_hint_state(shown)
        print("\n".join(out))
        return 0
    n = level if level is not None else min(reached.get(focus, 0) + 1, top)
    if n not in levels:
        raise Usage(f"no hint level {n} for {ex.label}: it has {', '.join(map(str, sorted(levels)))}")
    reached[focus] = max(reached.get(focus, 0), n)
    if full_marks(entry):
        out.append(f"(You have full marks on {ex.label} already.)")
    out += [f"Hint {n} of {top} for {ex.label} ({LEVEL_NAMES.get(n, 'more')}):", "", levels[n], ""]
    if n < top:
        out.append(f"Still stuck? make hint EX={ex.id} again gives hint {n + 1} of {top}.")
    else:
        out.append(f"That was the last hint. Read {rel(ex.reading)}" + (
            f"; the reference is make solution EX={ex.id} (after full marks, or with FORCE=1)."
            if ex.solution.is_file() else ": the rest is yours to write."))
    state.save_hint_state(shown)
    print("\n".join(out))
    return 0
