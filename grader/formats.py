"""Reports for course platforms: GitHub Classroom, Gradescope and JUnit XML.

Each writer reads the dictionary `report.to_json(results, seed)` returns, so every platform
shows the same scores as `python -m grader --json`.
"""
import base64
import json
import os
import re
import xml.etree.ElementTree as ET


def _tests(data):
    """(exercise, test, earned, message) for every test; a failed one carries its exercise's error."""
    for ex in data["exercises"]:
        for t in ex["tests"]:
            earned = t["passed"] and t["score"] == t["max_score"]
            message = t["message"] if not t["passed"] else ""
            if ex["error"] and not earned:
                message = (ex["error"] + "\n" + message).strip()
            yield ex, t, earned, message


def _split(total, weights):
    """`total` shared in proportion to `weights`, on a grid that adds up exactly.

    Whole, half and quarter scores go on a 1/64 grid, so a float sum (the Classroom reporter's)
    lands on them exactly; any other score goes on a grid of cents that adds up to it.
    """
    unit = 64 if float(total * 64).is_integer() else 100
    parts = [round(w * unit) for w in weights]
    if parts:
        biggest = max(range(len(parts)), key=lambda i: parts[i])
        parts[biggest] += round(total * unit) - sum(parts)
    return [p / unit for p in parts]


# --- GitHub Classroom -----------------------------------------------------------------------

def classroom(data):
    """The result one `autograding-*-grader` step hands the `autograding-grading-reporter`.

    The reporter adds up `tests[].score` over every runner for the points Classroom records,
    and `max_score` for the maximum; `status` "fail" marks the run failed.
    """
    tests, scores = [], []
    for ex in data["exercises"]:
        weights = [t["score"] for t in ex["tests"]]
        scores += _split(ex["score"], weights) if sum(weights) else [0.0] * len(weights)
    for (ex, t, earned, message), score in zip(_tests(data), scores):
        tests.append({
            "name": f"{ex['id']} {ex['name']}: {t['description']} [{t['category']}]",
            "status": "pass" if earned else "fail",
            "score": score,
            "message": message[:2000],
            # the reporter prints test_code (and not message) under a failed test
            "test_code": "" if earned else f"python -m grader {ex['id']} --seed {data['seed']}\n{message[:2000]}",
            "filename": f"exercises/{ex['file']}",
            "line_no": 0,   # the reporter prints "- line N" unless this is 0
        })
    return {"version": 1,
            "status": "pass" if all(t["status"] == "pass" for t in tests) else "fail",
            "max_score": data["max_score"],
            "tests": tests}


def write_classroom(data):
    """Writes `result=<base64 JSON>` to $GITHUB_OUTPUT when Actions set it, else prints it."""
    line = "result=" + base64.b64encode(json.dumps(classroom(data)).encode()).decode()
    target = os.environ.get("GITHUB_OUTPUT")
    if target:
        with open(target, "a") as f:
            f.write(line + "\n")
    else:
        print(line)


# --- Gradescope -----------------------------------------------------------------------------

def gradescope(data):
    """results.json as Gradescope's autograder specification describes it."""
    tests = [{
        "name": f"{ex['id']} {ex['name']}: {t['description']}",
        "number": f"{ex['id']}.{i}",
        "score": t["score"],
        "max_score": t["max_score"],
        "status": "passed" if earned else "failed",
        "output": message,
        "tags": [t["category"]],
        "visibility": "visible",
    } for i, (ex, t, earned, message) in enumerate(_tests(data), 1)]
    lines = [f"{ex['id']} {ex['name']}: {ex['score']:g}/{ex['max_score']:g} ({ex['status']})"
             for ex in data["exercises"]]
    lines.append(f"Seed {data['seed']}: `python -m grader --seed {data['seed']}` replays these inputs.")
    return {"score": data["score"], "output": "\n".join(lines), "visibility": "visible",
            "stdout_visibility": "visible", "tests": tests}


def write_gradescope(data, path):
    with open(path, "w") as f:
        json.dump(gradescope(data), f, indent=2)


# --- JUnit XML ------------------------------------------------------------------------------

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text):
    return _NOT_XML.sub("?", text)


def junit(data):
    """One testsuite per exercise, one testcase per hidden test (classname: the exercise)."""
    root = ET.Element("testsuites", name="attention exercises", tests="0", failures="0")
    for ex in data["exercises"]:
        ET.SubElement(root, "testsuite", name=f"{ex['id']}_{ex['name']}", tests="0", failures="0",
                      errors="0", skipped="0")
    suites = {s.get("name"): s for s in root}
    for ex, t, earned, message in _tests(data):
        suite = suites[f"{ex['id']}_{ex['name']}"]
        case = ET.SubElement(suite, "testcase", classname=suite.get("name"), name=t["name"], time="0")
        ET.SubElement(case, "properties").extend(
            [ET.Element("property", name=k, value=str(v)) for k, v in
             (("category", t["category"]), ("score", t["score"]), ("max_score", t["max_score"]))])
        for node in (suite, root):
            node.set("tests", str(int(node.get("tests")) + 1))
            if not earned:
                node.set("failures", str(int(node.get("failures")) + 1))
        if not earned:
            first = (message.splitlines() or ["failed"])[0]
            failure = ET.SubElement(case, "failure", message=_clean(first[:500]), type=t["category"])
            failure.text = _clean(message)
    return ET.ElementTree(root)


def write_junit(data, path):
    tree = junit(data)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
