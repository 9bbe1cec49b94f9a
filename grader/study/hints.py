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
    """What the last grade failed on, in the order a hint should speak to it: (rank, what, trigger).

    rank 0: the file is forbidden or broken; 1: the mistakes the grade named, first failing test first;
    2: the failing tests themselves (those that failed before those not checked), by name.
    """
    status = (entry or {}).get("status", "")
    if not entry or full_marks(entry) or status in (Status.NOT_STARTED, Status.MISSING):
        return []     # nothing written yet: a failure to speak to would be noise
    signals = []
    if status in (Status.FORBIDDEN, Status.BROKEN):
        signals.append((0, status, status))
    failing = [t for t in entry.get("tests", []) if not t.get("passed")]
    for t in failing:
        if t.get("mistake"):
            signals.append((1, f"{t.get('description') or t.get('name', '')} (the known mistake "
                               f"`{t['mistake']}`)", t["mistake"]))
    order = sorted(failing, key=lambda t: t.get("status") == TestStatus.NOT_CHECKED)
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
    entry = state.last_results().get(ex.id)
    shown = state.hint_state()
    mine = shown.setdefault(ex.id, {"level": 0, "shown": []})
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
            mine["shown"] = [f"{key}@{graded_at}"]
            score = f"{entry.get('score', 0):g}/{entry.get('max_score', 10):g}"
            out += [f"Hint for {ex.label}, about your last grade ({score}), which failed on: {what}", "", text, ""]
            others = list(dict.fromkeys(h[3] for h in hits[1:] if h[3] != what))
            if others:
                out.append("It also failed on: " + "; ".join(others[:3]) + ".")
            nxt = min(mine["level"] + 1, top)
            out.append(f"make hint EX={ex.id} again gives hint {nxt} of {top} ({LEVEL_NAMES.get(nxt, 'more')}).")
            state.save_hint_state(shown)
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
        out.append(f"That was the last hint. Read {rel(ex.reading)}" + (
            f"; the reference is make solution EX={ex.id} (after full marks, or with FORCE=1)."
            if ex.solution.is_file() else ": the rest is yours to write."))
    state.save_hint_state(shown)
    print("\n".join(out))
    return 0
