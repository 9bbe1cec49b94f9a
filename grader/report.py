"""The report: a readable page for the learner, and JSON for other tools."""
import json
import os
import sys

from .exercises import CATEGORIES
from .safe_text import MAX_REPORT_BYTES, fit, one_line
from .status import Status, TestStatus

STATUS_WORDS = {Status.COMPLETE: "complete", Status.IN_PROGRESS: "in progress",
                Status.NOT_STARTED: "not started", Status.BROKEN: "does not load",
                Status.FORBIDDEN: "forbidden helper: 0", Status.MISSING: "not attempted"}
NOTHING_WRITTEN = (Status.NOT_STARTED, Status.MISSING)
# A graded student template (grader/template.py) grades with the public tests alone: its reports
# never say "complete" or "Full marks", which only the course's hidden tests can say.
PUBLIC_ONLY_NOTE = "public tests only: your course grade comes from Classroom"


def public_only():
    from .exercises import GRADER_DIR
    return (GRADER_DIR / "PUBLIC_TESTS_ONLY").is_file()


def full_marks_words():
    """What a learner reads for a perfect local grade: in a graded template, only the public tests."""
    return "every public test passes" if public_only() else "full marks"


LAYER_WORDS = {"namespaces": "namespaces", "seccomp": "seccomp", "landlock": "Landlock", "uid": "own uid",
               "rlimits": "limits", "session": "no terminal", "hidden": "grader's files unreadable"}


def isolation(results):
    """The sandbox's layers this run, as the sandboxes reported them (the same for every exercise)."""
    return next((list(r.layers) for r in results if r.layers), [])


def isolation_line(layers):
    if not any(name in layers for name in ("namespaces", "seccomp", "landlock")):
        return "isolation: none on this system (fine for practice; a course grades where it is isolated)"
    missing = [LAYER_WORDS[n] for n in LAYER_WORDS if n not in layers]
    return "isolation: " + ", ".join(LAYER_WORDS[n] for n in LAYER_WORDS if n in layers) + (
        f"  (not here: {', '.join(missing)})" if missing else "")


ONCE = "not counted: this exercise's error is given once, in its first failed check"


def _messages(r):
    """Each test's message, with the exercise's error (which every test that could not run repeats)
    given once: in the first test that carries it."""
    error, told = r.import_error, False
    for t in r.tests:
        if error and t.message == error:
            yield ONCE if told else t.message
            told = True
        else:
            yield t.message


def to_json(results, seed):
    return {
        "score": round(sum(r.score for r in results), 2),
        "max_score": sum(r.max_score for r in results),
        "seed": seed,
        "isolation": {"layers": isolation(results)},
        "exercises": [{
            "id": r.exercise.id, "name": r.exercise.name, "file": r.exercise.filename,
            "score": r.score, "max_score": r.max_score, "status": r.status,
            "error": r.import_error or "; ".join(r.forbidden),
            "pattern": r.pattern,
            **({"narration": r.narration} if r.narration else {}),
            "tests": [{"name": t.name, "description": t.doc, "category": t.category, "passed": t.passed,
                       "status": t.status, "mistake": t.mistake,
                       "score": r.earned(t), "max_score": t.max_score, "message": message, "kind": t.kind}
                      for t, message in zip(r.tests, _messages(r))],
        } for r in results],
    }


class Style:
    def __init__(self, stream):
        self.on = stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"

    def __call__(self, text, code):
        return f"\033[{code}m{text}\033[0m" if self.on else text

    def ok(self, t): return self(t, "32")
    def bad(self, t): return self(t, "31")
    def dim(self, t): return self(t, "2")
    def bold(self, t): return self(t, "1")


def render(results, seed, directory, selection_args="", stream=None, max_failures=3):
    """The learner's page: one line per exercise, then what went wrong where, then what next."""
    style = Style(stream or sys.stdout)
    lines = [style.bold(f"Grading {one_line(directory)}/  (seed {seed})"), style.dim(isolation_line(isolation(results))), ""]
    public = public_only()
    words = {**STATUS_WORDS, Status.COMPLETE: "public tests pass"} if public else STATUS_WORDS
    if public:
        lines.insert(2, style.bold(PUBLIC_ONLY_NOTE))
    width = max(len(r.exercise.name) for r in results) + 4
    for r in results:
        frac = r.score / r.max_score if r.max_score else 0
        bar = "█" * round(frac * 10) + "·" * (10 - round(frac * 10))
        paint = style.ok if r.status == Status.COMPLETE else (style.dim if r.status in NOTHING_WRITTEN
                                                              else style.bad)
        cats = " ".join(_category_mark(r, c, style) for c in CATEGORIES if any(t.category == c for t in r.tests))
        head = f"  {r.exercise.id} {r.exercise.name:<{width}}{r.score:>5g}/{r.max_score:g}  {paint(bar)}  "
        lines.append(head + (paint(words[r.status]) if r.status != Status.IN_PROGRESS else cats))
        lines += _details(r, style, max_failures)
        if r.narration and r.narration.get("line") and r.narration.get("comments", 1):   # none: no line
            lines.append("       " + style.dim(one_line(r.narration["line"], 400)))
    total = sum(r.score for r in results)
    top = sum(r.max_score for r in results)
    lines += ["", style.bold(f"Total {round(total, 2):g} / {top:g}"), _next_step(results, style),
              style.dim(_replay(selection_args, seed))]
    return "\n".join(lines)


def _replay(selection_args, seed):
    ids = selection_args.split()
    ex = "" if not ids else f"EX={ids[0]} " if len(ids) == 1 else f'EX="{" ".join(ids)}" '
    return f"Same inputs again: make grade {ex}SEED={seed}  (or python -m grader {selection_args}--seed {seed})"


def _category_mark(r, category, style):
    tests = [t for t in r.tests if t.category == category]
    if all(t.passed for t in tests):
        return style.ok(category + " ✓")
    if any(t.status == TestStatus.FAILED for t in tests):
        return style.bad(category + " ✗")
    return style.dim(category + " –")      # not checked: the code crashed or its values were wrong first


def _details(r, style, max_failures):
    pad = "       "
    if r.status in (*NOTHING_WRITTEN, Status.COMPLETE):
        return []
    if r.status == Status.BROKEN:
        return [pad + style.bad(r.import_error)]
    out = []
    if r.forbidden:
        out += [pad + style.bad("Scored 0: the file " + f) for f in r.forbidden[:3]]
        out.append(pad + "Write it with basic tensor operations: the point is to build it yourself.")
        return out
    failed = [t for t in r.tests if not t.passed]
    if r.pattern:
        out.append(pad + style.bold(r.pattern))
    named = set()
    for t in failed[:max_failures]:
        if t.status == TestStatus.FAILED:
            out.append(pad + style.bad("✗ ") + f"{t.doc}  [{t.category}, {t.max_score:g} pt]")
        else:
            out.append(pad + style.dim("– ") + f"{t.doc}  [{t.category}, {t.max_score:g} pt, not checked: "
                       + ("your code did not run through" if t.kind != "fail" else "a value came out wrong first")
                       + "]")
        out += [pad + "  " + line for line in _once(t, named).splitlines()]
    if len(failed) > max_failures:
        out.append(pad + style.dim(f"... and {len(failed) - max_failures} more failing checks "
                                   f"(make grade EX={r.exercise.id} shows all)"))
    if r.printed.strip():
        out.append(pad + style.dim("your code printed: " + r.printed.strip().replace("\n", "\n" + pad + "  ")))
    return out


def _once(t, named):
    """The test's message, with a known mistake already explained above cut to its title."""
    message = t.message
    if not t.mistake:
        return message
    head, sep, rest = message.partition("This looks like a known mistake: ")
    if t.mistake in named and sep:
        return head + "Again the known mistake above: " + rest.split("\n")[0]
    named.add(t.mistake)
    return message


def _next_step(results, style):
    on_save = os.environ.get("GRADER_ON_SAVE") == "1"     # watch and drill grade each save themselves
    for r in results:
        if r.status != Status.COMPLETE:
            verb = "Start" if r.status in NOTHING_WRITTEN else "Continue with"
            if on_save:
                return f"Next: {verb} exercises/{r.exercise.filename}, then save the file: it is graded again."
            return (f"Next: {verb} exercises/{r.exercise.filename}, then run "
                    + style.bold(f"make grade EX={r.exercise.id}"))
    from .exercises import all_exercises
    if public_only():
        return style.ok(f"Every public test passes ({PUBLIC_ONLY_NOTE}).")
    if on_save:
        return style.ok("Full marks.")
    if len(results) < len(all_exercises()):
        done = " ".join(r.exercise.id for r in results)
        return style.ok(f"Full marks on {done}. Grade every exercise with make grade.")
    return style.ok("Every exercise is complete. Try them again from a blank file, against the clock.")


def write_json(results, seed, path, audit=None):
    data = to_json(results, seed)
    if audit is not None:
        data["audit"] = audit
    with open(path, "w") as f:
        f.write(dumps_bounded(data))


def dumps_bounded(data):
    """The report as JSON of at most MAX_REPORT_BYTES; what was cut says so, and "cut" says why."""
    def note(smaller, n):
        smaller["cut"] = f"strings over {n} characters were cut to keep this report under {MAX_REPORT_BYTES >> 20} MiB"
    return fit(data, lambda d: json.dumps(d, indent=2), note=note)
