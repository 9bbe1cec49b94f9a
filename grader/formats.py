"""Reports for course platforms: GitHub Classroom, Gradescope and JUnit XML.

Each writer reads the dictionary `report.to_json(results, seed)` returns, so every platform
shows the same scores as `python -m grader --json`. Test weights are quarter points that add up
to exactly 10 per exercise (grader/points.py), so every total below is exact.
"""
import base64
import json
import os
import re
import xml.etree.ElementTree as ET

from .report import ONCE
from .safe_text import MAX_REPORT_BYTES, capped, fit, inert, one_line
from .status import TestStatus

ERROR_KINDS = {"timeout", "crashed", "import", "spent", "grader"}   # the code did not run to an answer


def _tests(data):
    """(exercise, test, earned, message) for every test. The exercise's error is given once, in its
    first test that earned nothing (every platform shows a failed test's message); the others
    point to it."""
    for ex in data["exercises"]:
        told = False
        for t in ex["tests"]:
            earned = t["passed"] and t["score"] == t["max_score"]
            message = t["message"] if not t["passed"] else ""
            if t["passed"] and not earned and not ex["error"]:
                message = ("this rule holds, but its points count only once the exercise earns points for "
                           "what it computes")
            if ex["error"] and not earned:
                if not told:
                    message = ex["error"] if message in (ex["error"], ONCE) else \
                        (ex["error"] + "\n" + message).strip()
                    told = True
                elif message in ("", ex["error"]):
                    message = ONCE
            yield ex, t, earned, message


def outcome(ex, t, earned):
    """passed | failure (a wrong answer) | error (timeout, crash, tampering: no answer at all)."""
    if earned:
        return "passed"
    if t.get("kind") in ERROR_KINDS or "tampering" in (ex.get("error") or "") or "tampering" in t["message"]:
        return "error"
    return "failure"


# --- GitHub Classroom -----------------------------------------------------------------------
#
# The reporter (classroom-resources/autograding-grading-reporter@v1) shows, per runner, passed
# tests / all tests * max_score in its table and "Total points for" lines, and records the sum of
# tests[].score in its "Points X/Y" notice. So each exercise becomes entries of one equal weight
# (10/N points, N = 10, 20 or 40): a hidden test worth w points is w / (10/N) entries, all passed
# or all failed. Then both numbers are the grade, to the digit.

MESSAGE_LIMIT = 800          # per failing test, in the log; keeps each runner's env var far below 128 KiB


def _entries_per_exercise(weights, total):
    for n in (10, 20, 40):
        unit = total / n
        if all(float(w / unit).is_integer() for w in weights):
            return n
    raise ValueError(f"test weights {weights} are not on the quarter-point grid")


def classroom_runner(ex, seed, cap=MESSAGE_LIMIT):
    """One exercise as the result of one `autograding-*-grader` runner."""
    rows = list(_tests({"exercises": [ex]}))
    top = ex["max_score"]
    n = _entries_per_exercise([t["max_score"] for _, t, _, _ in rows], top) if rows else 40
    unit = top / n
    tests = []
    for _, t, earned, message in rows:
        k = round(t["max_score"] / unit)
        label = one_line(f"{ex['id']} {ex['name']}: {t['description']} [{t['category']}, {t['max_score']:g} pt]")
        message = inert(message[:cap])      # the reporter prints it into the log: no command in it
        for j in range(k):
            first = j == 0
            tests.append({
                "name": label if k == 1 else f"{label} {j + 1}/{k}",
                "status": "pass" if earned else "fail",
                "score": unit if earned else 0.0,
                "message": message if first else "",
                # the reporter prints test_code (and not message) under a failed test
                "test_code": "" if earned or not first else
                f"python -m grader {ex['id']} --seed {inert(str(seed))}\n{message}",
                "filename": f"exercises/{ex['file']}",
                "line_no": 0,   # the reporter prints "- line N" unless this is 0
            })
    if not tests:           # the exercise produced no tests at all: 0, with the reason
        reason = inert((ex.get("error") or "the grader could not run this exercise's tests")[:cap])
        tests = [{"name": f"{ex['id']} {ex['name']}: not graded ({j + 1}/{n})", "status": "fail", "score": 0.0,
                  "message": reason if j == 0 else "", "test_code": reason if j == 0 else "",
                  "filename": f"exercises/{ex['file']}", "line_no": 0} for j in range(n)]
    return {"version": 1,
            "status": "pass" if all(t["status"] == "pass" for t in tests) else "fail",
            "max_score": top,
            "tests": tests}


def audit_runner(findings):
    """The audit as a runner worth 0 points: the reporter lists it, Classroom's total ignores it,
    and any finding marks the run failed."""
    findings = [one_line(f) for f in capped(findings)]      # the reporter prints each: one line, no command
    if findings:
        tests = [{"name": f"changed from the course template: {f}", "status": "fail", "score": 0,
                  "message": f, "test_code": "Only exercises/ is yours to edit; the course's grader graded this "
                  "run, and your instructor sees this line.", "filename": "", "line_no": 0} for f in findings]
    else:
        tests = [{"name": "grader/ and .github/ are the course template's", "status": "pass", "score": 0,
                  "message": "", "test_code": "", "filename": "", "line_no": 0}]
    return {"version": 1, "status": "fail" if findings else "pass", "max_score": 0, "tests": tests}


def encode(results):
    return base64.b64encode(json.dumps(results).encode()).decode()


def classroom(data):
    """{runner id: result}: `exNN` for every exercise graded, and `audit` when the run audited."""
    out = {}
    for ex in data["exercises"]:
        cap = MESSAGE_LIMIT
        result = classroom_runner(ex, data["seed"], cap)
        while len(encode(result)) > 90_000 and cap > 50:      # the reporter reads it from one env var
            cap //= 2
            result = classroom_runner(ex, data["seed"], cap)
        out[f"ex{ex['id']}"] = result
    if data.get("audit") is not None:
        out["audit"] = audit_runner(data["audit"])
    return out


def missing_runner(ex_id, name, reason):
    """What the reporter reads for an exercise the grading step never reported: 0, with why."""
    return classroom_runner({"id": ex_id, "name": name, "file": f"{ex_id}_{name}.py", "max_score": 10.0,
                             "score": 0.0, "error": reason, "tests": []}, seed="SEED")


def write_classroom(data):
    """Writes `exNN=<base64 JSON>` per exercise (and `audit=`, `graded=1`) to $GITHUB_OUTPUT when
    Actions set it, else prints them. A run of one exercise also writes `result=` (one step per
    exercise, the shape Classroom generates)."""
    runners = classroom(data)
    lines = [f"{k}={encode(v)}" for k, v in runners.items()]
    exercises = [k for k in runners if k.startswith("ex")]
    if len(exercises) == 1:
        lines.append(f"result={encode(runners[exercises[0]])}")
    lines.append("graded=1")
    _output(lines)


def _output(lines):
    target = os.environ.get("GITHUB_OUTPUT")
    if target:
        with open(target, "a") as f:
            f.write("".join(line + "\n" for line in lines))
    else:
        print("\n".join(lines))


def fallback_main(argv):
    """python -m grader.formats fallback REASON: `exNN=` with 0 points and REASON for every exercise,
    and `audit=`, for a grading step that failed before it reported (stdlib only: no torch)."""
    from .exercises import all_exercises
    reason = argv[0] if argv else "the grading step failed before it reported: see its log"
    lines = [f"ex{ex.id}={encode(missing_runner(ex.id, ex.name, reason))}" for ex in all_exercises()]
    lines.append("audit=" + encode(audit_runner([f"not audited: {reason}"])))
    _output(lines)
    return 0


# --- Gradescope -----------------------------------------------------------------------------

def gradescope(data, execution_time=None):
    """results.json as Gradescope's autograder specification describes it."""
    tests, index = [], {}
    for ex, t, earned, message in _tests(data):
        index[ex["id"]] = index.get(ex["id"], 0) + 1
        tests.append({
            "name": one_line(f"{ex['id']} {ex['name']}: {t['description']}"),
            "number": f"{int(ex['id'])}.{index[ex['id']]}",
            "score": t["score"],
            "max_score": t["max_score"],
            "status": TestStatus.PASSED if earned else TestStatus.FAILED,     # Gradescope's words too
            "output": inert(message),
            "tags": [t["category"]],
            "visibility": "visible",
        })
    lines = [f"{ex['id']} {ex['name']}: {ex['score']:g}/{ex['max_score']:g} ({ex['status']})"
             for ex in data["exercises"]]
    # Students read the output and the tests: only what they can act on. The seed (they hold no
    # hidden tests to replay it with) goes to extra_data, the grader's own log to the instructor.
    out = {"score": data["score"], "output": "\n".join(lines), "visibility": "visible",
           "stdout_visibility": "hidden", "extra_data": {"seed": data["seed"]}, "tests": tests}
    if execution_time is not None:
        out["execution_time"] = max(1, round(execution_time))
    return out


def write_gradescope(data, path, execution_time=None):
    """results.json of at most MAX_REPORT_BYTES: what was cut says so, and so does the top output."""
    def note(smaller, n):
        smaller["output"] += (f"\nMessages over {n} characters were cut to keep this file under "
                              f"{MAX_REPORT_BYTES >> 20} MiB.")
    with open(path, "w") as f:
        f.write(fit(gradescope(data, execution_time), lambda d: json.dumps(d, indent=2), note=note))


# --- JUnit XML ------------------------------------------------------------------------------
#
# Valid against the common junit-10.xsd (Jenkins xUnit): <properties> only at suite level (the
# exercise's score), each test's points in its <system-out>, real times, <error> for a test whose
# code timed out, crashed or tampered, <failure> for a wrong answer.

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text):
    return _NOT_XML.sub("?", text)


def _seconds(x):
    return f"{x:.3f}"


def junit(data):
    """One testsuite per exercise, one testcase per hidden test (classname: the exercise)."""
    root = ET.Element("testsuites", name="attention exercises")
    totals = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
    for ex in data["exercises"]:
        suite = ET.SubElement(root, "testsuite", name=f"{ex['id']}_{ex['name']}")
        ET.SubElement(suite, "properties").extend(
            [ET.Element("property", name=k, value=str(v)) for k, v in
             (("score", f"{ex['score']:g}"), ("max_score", f"{ex['max_score']:g}"), ("status", ex["status"]),
              ("seed", data["seed"]))])
        counts = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
        for _, t, earned, message in _tests({"exercises": [ex]}):
            seconds = float(t.get("time") or 0.0)
            case = ET.SubElement(suite, "testcase", classname=suite.get("name"), name=one_line(t["name"]),
                                 time=_seconds(seconds))
            kind = outcome(ex, t, earned)
            counts["tests"] += 1
            counts["time"] += seconds
            if kind != "passed":
                counts["failures" if kind == "failure" else "errors"] += 1
                first = (message.splitlines() or [kind])[0]
                node = ET.SubElement(case, kind, message=_clean(first[:500]),
                                     type=t.get("kind") or t["category"])
                node.text = _clean(message)
            ET.SubElement(case, "system-out").text = _clean(
                f"{t['description']} [{t['category']}]: {t['score']:g}/{t['max_score']:g} points")
        suite.set("tests", str(counts["tests"]))
        suite.set("failures", str(counts["failures"]))
        suite.set("errors", str(counts["errors"]))
        suite.set("skipped", "0")
        suite.set("time", _seconds(counts["time"]))
        for k in totals:
            totals[k] += counts[k]
    for k in ("tests", "failures", "errors"):
        root.set(k, str(totals[k]))
    root.set("time", _seconds(totals["time"]))
    return ET.ElementTree(root)


def write_junit(data, path):
    """JUnit XML of at most MAX_REPORT_BYTES; every message cut to fit ends with CUT_MARK."""
    def render(d):
        tree = junit(d)
        ET.indent(tree)
        return ET.tostring(tree.getroot(), encoding="utf-8", xml_declaration=True)
    with open(path, "wb") as f:
        f.write(fit(data, render))


if __name__ == "__main__":
    import sys
    if sys.argv[1:2] == ["fallback"]:
        sys.exit(fallback_main(sys.argv[2:]))
    sys.exit("usage: python -m grader.formats fallback REASON")
