"""Course platforms: Gradescope, JUnit XML, the student template and the batch gradebook."""
import csv
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile

import pytest

from helpers import EXERCISES, REPO

SOLVED = [ex for ex in EXERCISES if (REPO / "solutions" / ex.filename).is_file()]
PICK = [ex for ex in SOLVED if ex.id in ("05", "07")]
needs_pick = pytest.mark.skipif(len(PICK) < 2 or PICK[0].id != "05",
                                reason="needs the references for 05 and 07")
PARTIAL_SOFTMAX = '''
def softmax(x, dim=-1):
    e = (x - x.amax(dim, keepdim=True)).exp()
    return e / e.sum(dim, keepdim=True)
'''


def run(cmd, cwd=REPO, env=None, timeout=600):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "NO_COLOR": "1", **(env or {})})


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """One grading of a partial 05 and a complete 07, written as JSON, Gradescope and JUnit."""
    if len(PICK) < 2 or PICK[0].id != "05":
        pytest.skip("needs the references for 05 and 07")
    tmp = tmp_path_factory.mktemp("formats")
    sub = tmp / "sub"
    sub.mkdir()
    (sub / "05_softmax.py").write_text(PARTIAL_SOFTMAX)
    shutil.copy(REPO / "solutions" / PICK[1].filename, sub)
    proc = run([sys.executable, "-m", "grader", "05", PICK[1].id, "--path", str(sub), "--seed", "3",
                "--json", str(tmp / "r.json"), "--gradescope", str(tmp / "gs.json"), "--junit", str(tmp / "j.xml")])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return (json.loads((tmp / "r.json").read_text()), json.loads((tmp / "gs.json").read_text()),
            ET.parse(tmp / "j.xml"))


def check_gradescope(gs, report):
    assert gs["score"] == report["score"]
    assert gs["visibility"] in ("visible", "hidden", "after_due_date", "after_published")
    all_tests = [(ex, t) for ex in report["exercises"] for t in ex["tests"]]
    assert len(gs["tests"]) == len(all_tests)
    for g, (ex, t) in zip(gs["tests"], all_tests):
        assert set(g) >= {"name", "score", "max_score", "status", "output", "visibility", "tags"}
        assert g["status"] in ("passed", "failed") and g["tags"] == [t["category"]]
        assert g["score"] == t["score"] and g["max_score"] == t["max_score"]
        assert (g["status"] == "passed") == (t["passed"] and t["score"] == t["max_score"])
        assert g["name"].startswith(ex["id"]) and isinstance(g["output"], str)
        if g["status"] == "failed":
            assert g["output"]
    assert abs(sum(g["score"] for g in gs["tests"]) - gs["score"]) < 0.01


def test_gradescope_results_follow_the_spec(reports):
    report, gs, _ = reports
    assert 0 < report["score"] < report["max_score"]
    check_gradescope(gs, report)


def test_junit_has_a_testcase_per_hidden_test(reports):
    report, _, tree = reports
    root = tree.getroot()
    cases = root.findall("./testsuite/testcase")
    all_tests = [(ex, t) for ex in report["exercises"] for t in ex["tests"]]
    failed = [(ex, t) for ex, t in all_tests if not (t["passed"] and t["score"] == t["max_score"])]
    assert len(cases) == len(all_tests) == int(root.get("tests"))
    assert len(failed) == int(root.get("failures")) == len(root.findall("./testsuite/testcase/failure")) > 0
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        (f"{ex['id']}_{ex['name']}", t["name"]) for ex, t in all_tests]
    for suite in root.findall("testsuite"):
        assert int(suite.get("tests")) == len(suite.findall("testcase"))
        assert int(suite.get("failures")) == len(suite.findall("testcase/failure"))
    for c in root.findall("./testsuite/testcase[failure]"):
        assert c.find("failure").get("message")


@needs_pick
def test_run_autograder_grades_a_fake_autograder_tree(tmp_path):
    proc = run(["make", "-s", "gradescope", f"PYTHON={sys.executable}"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    root = tmp_path / "autograder"
    with zipfile.ZipFile(REPO / "dist" / "gradescope.zip") as z:
        names = z.namelist()
        assert {"setup.sh", "run_autograder", "requirements.txt", "grader/__main__.py"} <= set(names)
        assert not [n for n in names if n.startswith(("solutions/", "tests/"))]
        z.extractall(root / "source")
    (root / "source" / "run_autograder").chmod(0o755)
    (root / "submission" / "exercises").mkdir(parents=True)
    shutil.copy(REPO / "solutions" / PICK[0].filename, root / "submission")                 # top level
    shutil.copy(REPO / "solutions" / PICK[1].filename, root / "submission" / "exercises")   # under exercises/
    env = {"AUTOGRADER_ROOT": str(root), "PYTHON": sys.executable, "GRADER_SEED": "5",
           "GRADER_EXERCISES": f"{PICK[0].id} {PICK[1].id}"}
    proc = run([str(root / "source" / "run_autograder")], cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    gs = json.loads((root / "results" / "results.json").read_text())
    assert gs["score"] == 20.0 and all(t["status"] == "passed" for t in gs["tests"]), gs["output"]
    assert "Seed 5" in gs["output"]


def test_student_template_grades_without_the_references(tmp_path):
    dest = tmp_path / "student"
    proc = run(["make", "-s", "student-template", f"DEST={dest}"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for kept in ("Makefile", "README.md", "requirements.txt", ".gitignore", ".github/workflows/classroom.yml",
                 "grader/__main__.py", "exercises"):
        assert (dest / kept).exists(), kept
    for gone in ("solutions", "tests", "bench", ".venv", "requirements-dev.txt"):
        assert not (dest / gone).exists(), gone
    assert sorted(p.name for p in (dest / "exercises").glob("*.py")) == \
        sorted(p.name for p in (REPO / "exercises").glob("*.py"))
    assert sorted(p.name for p in (dest / "exercises").rglob("*.md")) == \
        sorted(p.name for p in (REPO / "exercises").rglob("*.md"))
    references = {p.read_bytes() for p in (REPO / "solutions").glob("*.py")}
    assert not [p for p in dest.rglob("*.py") if p.read_bytes() in references], "a reference leaked"
    if len(PICK) < 2:
        return
    for ex in PICK:
        shutil.copy(REPO / "solutions" / ex.filename, dest / "exercises")
    proc = run([sys.executable, "-m", "grader", *(ex.id for ex in PICK), "--seed", "2", "--json", "r.json"],
               cwd=dest)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((dest / "r.json").read_text())["score"] == 10.0 * len(PICK)


@needs_pick
def test_batch_gradebook(tmp_path):
    subs = tmp_path / "class"
    for name in ("alice", "bob", "carol", "=dave"):
        (subs / name).mkdir(parents=True)
    other = PICK[1]
    for ex in PICK:                                                             # alice: all correct
        shutil.copy(REPO / "solutions" / ex.filename, subs / "alice")
    (subs / "bob" / "05_softmax.py").write_text(PARTIAL_SOFTMAX)                # bob: partial
    shutil.copy(REPO / "exercises" / other.filename, subs / "bob")
    (subs / "carol" / "05_softmax.py").write_text("def softmax(x, dim=-1) :::\n")   # carol: broken
    (subs / "=dave" / "05_softmax.py").write_text("def softmax(x, dim=-1):\n    while True:\n        pass\n")
    shutil.copy(REPO / "solutions" / other.filename, subs / "=dave")            # dave: hangs on 05
    (subs / "notes.txt").write_text("not a submission")
    out = tmp_path / "grades.csv"
    proc = run([sys.executable, "-m", "grader", "batch", str(subs), "05", other.id, "--csv", str(out),
                "--seed", "9", "--jobs", "2"], env={"GRADER_TIMEOUT": "2"})
    assert proc.returncode == 0, proc.stderr
    assert "[4/4]" in proc.stderr
    rows = {r["student"]: r for r in csv.DictReader(out.open())}
    assert list(next(csv.reader(out.open()))) == ["student", "05", other.id, "total", "status", "error"]
    assert set(rows) == {"alice", "bob", "carol", "'=dave"}
    cell = {name: (float(r["05"]), float(r[other.id]), float(r["total"]), r["status"]) for name, r in rows.items()}
    assert cell["alice"] == (10.0, 10.0, 20.0, "ok")
    assert 0 < cell["bob"][0] < 10 and cell["bob"][1] == 0 and cell["bob"][2] == cell["bob"][0]
    assert cell["carol"] == (0.0, 0.0, 0.0, "ok") and "SyntaxError" in rows["carol"]["error"]
    assert cell["'=dave"] == (0.0, 10.0, 10.0, "ok")


def test_batch_kills_a_submission_past_its_timeout(tmp_path):
    (tmp_path / "class" / "slow").mkdir(parents=True)
    out = tmp_path / "grades.csv"
    proc = run([sys.executable, "-m", "grader", "batch", str(tmp_path / "class"), EXERCISES[0].id,
                "--csv", str(out), "--seed", "1", "--timeout", "0.3"])
    assert proc.returncode == 0, proc.stderr
    (row,) = csv.DictReader(out.open())
    assert row["student"] == "slow" and row["status"] == "timeout" and row["total"] == ""
    assert "0.3 s" in row["error"]
