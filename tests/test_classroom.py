"""GitHub Classroom: the workflow lints, each grading step emits what the reporter reads, and
the points the reporter records add up to the grader's own total for the same seed."""
import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import EXERCISES, REPO, grade

WORKFLOW = REPO / ".github" / "workflows" / "classroom.yml"
SOLVED = [ex for ex in EXERCISES if (REPO / "solutions" / ex.filename).is_file()]
PICK = [ex.id for ex in SOLVED if ex.id in ("05", "07")] or [ex.id for ex in SOLVED[:2]]
SEED = 20240611

# Right except on a slice of all -inf (it gives NaN there): partial credit on exercise 05.
PARTIAL_SOFTMAX = '''
def softmax(x, dim=-1):
    e = (x - x.amax(dim, keepdim=True)).exp()
    return e / e.sum(dim, keepdim=True)
'''


def actionlint():
    found = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    assert found, "actionlint is missing: pip install -r requirements-dev.txt"
    return found


def test_workflow_passes_actionlint():
    proc = subprocess.run([actionlint(), str(WORKFLOW)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def workflow_wiring():
    """(runners, {runner: env var the reporter reads}, {runner: grading command}) from the workflow."""
    text = WORKFLOW.read_text()
    runners = re.search(r"^\s*runners:\s*(\S+)\s*$", text, re.M).group(1).split(",")
    env = dict(re.findall(r"^\s*(\w+)_RESULTS:\s*\"\$\{\{\s*steps\.(\w+)\.outputs\.result\s*\}\}\"", text, re.M))
    commands = dict(re.findall(r"^\s*id: (\w+)\n(?:\s+\S.*\n)*?\s+run: (python -m grader .*)$", text, re.M))
    return runners, {v: k for k, v in env.items()}, commands


def test_workflow_has_classroom_shape_and_a_step_per_exercise():
    text = WORKFLOW.read_text()
    for needle in ("name: Autograding Tests", "- push", "- repository_dispatch", "checks: write",
                   "actions: read", "contents: read", "if: github.actor != 'github-classroom[bot]'",
                   "run-autograding-tests:", "actions/checkout@", "actions/setup-python@", "cache: pip",
                   "--index-url https://download.pytorch.org/whl/cpu",
                   "classroom-resources/autograding-grading-reporter@v1"):
        assert needle in text, needle
    runners, env, commands = workflow_wiring()
    assert runners == [f"ex{ex.id}" for ex in EXERCISES]
    for runner in runners:
        # the reporter reads process.env[`${runner.trim().toUpperCase()}_RESULTS`]
        assert env[runner] == runner.upper()
        assert commands[runner] == f'python -m grader {runner[2:]} --seed "$GRADER_SEED" --classroom'
    assert "GRADER_SEED=" in text and '>> "$GITHUB_ENV"' in text


def step_results(path, ids, tmp_path):
    """Runs each exercise's grading step as the workflow does (all at once); {runner: output line}."""
    procs = {}
    for i in ids:
        out = tmp_path / f"github_output_{i}"
        out.write_text("")
        cmd = [sys.executable, "-m", "grader", i, "--path", str(path), "--seed", str(SEED), "--classroom"]
        procs[f"ex{i}"] = (subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                            env={**os.environ, "GITHUB_OUTPUT": str(out)}), out)
    lines = {}
    for runner, (proc, out) in procs.items():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()
        lines[runner] = out.read_text().splitlines()
    return lines


def reporter_points(env):
    """What autograding-grading-reporter@v1 records, done its way (src/main.js and
    src/notify-classroom.js): decode each runner's base64 JSON, then add `max_score` per runner and
    `tests[].score` per test (in float, in order), skipping a runner whose max_score is 0."""
    total, top = 0, 0
    for runner in env["INPUT_RUNNERS"].split(","):
        results = json.loads(base64.b64decode(env[f"{runner.strip().upper()}_RESULTS"]).decode("utf-8"))
        check_schema(results)
        if not results["max_score"]:
            continue
        top += results["max_score"]
        for test in results["tests"]:
            total += test["score"]
    return total, top


def check_schema(results):
    assert results["version"] == 1
    assert results["status"] in ("pass", "fail", "error")
    assert isinstance(results["max_score"], (int, float)) and results["max_score"] > 0
    assert results["tests"]
    for t in results["tests"]:
        assert isinstance(t["name"], str) and t["name"]
        assert t["status"] in ("pass", "fail", "error")
        assert isinstance(t["score"], (int, float)) and t["score"] >= 0
        assert isinstance(t["message"], str)
        assert t["line_no"] == 0          # else the reporter prints "- line <line_no>"
    assert results["status"] == ("pass" if all(t["status"] == "pass" for t in results["tests"]) else "fail")


def check_sum(path, ids, tmp_path):
    lines = step_results(path, ids, tmp_path)
    env = {"INPUT_RUNNERS": ",".join(lines)}
    for runner, out in lines.items():
        assert len(out) == 1 and out[0].startswith("result="), out
        env[f"{runner.upper()}_RESULTS"] = out[0].removeprefix("result=")
    points, top = reporter_points(env)
    code, report, text = grade(path, *ids, seed=SEED)
    assert report is not None, text
    assert top == report["max_score"]
    return points, report


@pytest.mark.skipif(not PICK, reason="no reference solutions yet")
def test_full_marks_add_up_exactly(tmp_path):
    points, report = check_sum(REPO / "solutions", PICK, tmp_path)
    assert report["score"] == report["max_score"]
    assert points == report["score"]          # exactly: "Points 20/20", never 19.999999999999996


@pytest.mark.skipif("05" not in PICK or len(PICK) < 2, reason="needs the reference for 05 and another")
def test_partial_submission_adds_up_to_the_grader_total(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "05_softmax.py").write_text(PARTIAL_SOFTMAX)
    other = next(ex for ex in SOLVED if ex.id in PICK and ex.id != "05")
    shutil.copy(REPO / "solutions" / other.filename, sub / other.filename)
    points, report = check_sum(sub, ["05", other.id], tmp_path)
    assert 0 < report["score"] < report["max_score"]
    scores = {ex["id"]: ex["score"] for ex in report["exercises"]}
    assert 0 < scores["05"] < 10
    assert round(points, 2) == report["score"] and abs(points - report["score"]) < 1e-9


def test_classroom_without_github_output_prints_the_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_OUTPUT"}
    proc = subprocess.run([sys.executable, "-m", "grader", EXERCISES[0].id, "--path", str(tmp_path),
                           "--seed", "1", "--classroom"], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0           # the result carries the verdict; the step itself succeeds
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("result=")]
    results = json.loads(base64.b64decode(line[0].removeprefix("result=")))
    check_schema(results)
    assert results["status"] == "fail" and sum(t["score"] for t in results["tests"]) == 0


def test_scores_are_split_so_a_float_sum_lands_on_the_exercise_score():
    from grader.formats import classroom
    weights = [0.455, 0.909, 1.364, 1.818, 2.273, 0.909, 2.273]      # 10.001 as the grader rounds them
    for score, passed in ((10.0, [True] * 7), (7.27, [True] * 5 + [False] * 2), (8.5, [True] * 6 + [False])):
        tests = [{"name": f"t{i}", "description": f"t{i}", "category": "edge", "passed": p,
                  "score": w if p else 0.0, "max_score": w, "message": "" if p else "wrong"}
                 for i, (w, p) in enumerate(zip(weights, passed))]
        data = {"score": score, "max_score": 10.0, "seed": 1, "exercises": [
            {"id": "05", "name": "softmax", "file": "05_softmax.py", "score": score, "max_score": 10.0,
             "status": "in progress", "error": "", "tests": tests}]}
        total = 0
        for t in classroom(data)["tests"]:
            total += t["score"]
        assert round(total, 2) == score and abs(total - score) < 1e-9
        if score in (10.0, 8.5):
            assert total == score
