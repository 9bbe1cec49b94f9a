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

from helpers import EXERCISES, REPO, run_grader

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


ENV = {"GRADER_ALLOW_WEAK_ISOLATION": "1"}
SCHEMA = REPO / "tests" / "schemas" / "junit-10.xsd"


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """One grading of a partial 05, a complete 07 and a 04 that ends the process, written as JSON,
    Gradescope and JUnit."""
    if len(PICK) < 2 or PICK[0].id != "05":
        pytest.skip("needs the references for 05 and 07")
    tmp = tmp_path_factory.mktemp("formats")
    sub = tmp / "sub"
    sub.mkdir()
    (sub / "05_softmax.py").write_text(PARTIAL_SOFTMAX)
    shutil.copy(REPO / "solutions" / PICK[1].filename, sub)
    shutil.copy(REPO / "tests" / "cheats" / "04_mask__os_exit.py", sub / "04_mask.py")
    code, text = run_grader(["04", "05", PICK[1].id, "--path", str(sub), "--seed", "3", "--json", str(tmp / "r.json"),
                             "--gradescope", str(tmp / "gs.json"), "--junit", str(tmp / "j.xml")],
                            env={**os.environ, "NO_COLOR": "1", **ENV})
    assert code == 1, text
    return (json.loads((tmp / "r.json").read_text()), json.loads((tmp / "gs.json").read_text()),
            ET.parse(tmp / "j.xml"), tmp / "j.xml")


def check_gradescope(gs, report):
    assert gs["score"] == report["score"]
    assert gs["visibility"] in ("visible", "hidden", "after_due_date", "after_published")
    assert isinstance(gs["execution_time"], int) and gs["execution_time"] >= 1
    all_tests = [(ex, t) for ex in report["exercises"] for t in ex["tests"]]
    assert len(gs["tests"]) == len(all_tests)
    numbers = {}
    for g, (ex, t) in zip(gs["tests"], all_tests):
        assert set(g) >= {"name", "score", "max_score", "status", "output", "visibility", "tags", "number"}
        assert g["status"] in ("passed", "failed") and g["tags"] == [t["category"]]
        assert g["score"] == t["score"] and g["max_score"] == t["max_score"]
        assert (g["status"] == "passed") == (t["passed"] and t["score"] == t["max_score"])
        assert g["name"].startswith(ex["id"]) and isinstance(g["output"], str)
        numbers[ex["id"]] = numbers.get(ex["id"], 0) + 1
        assert g["number"] == f"{int(ex['id'])}.{numbers[ex['id']]}"      # 5.1, 5.2, ... per exercise
        if g["status"] == "failed":
            assert g["output"]
    total = 0.0
    for g in gs["tests"]:
        total += g["score"]
    assert total == gs["score"]                                           # quarter points: exact


def test_gradescope_results_follow_the_spec(reports):
    report, gs, _, _ = reports
    assert 0 < report["score"] < report["max_score"]
    check_gradescope(gs, report)


def test_junit_validates_against_junit_10_xsd_and_reads_in_junitparser(reports):
    import junitparser
    import xmlschema
    report, _, tree, path = reports
    xmlschema.XMLSchema(str(SCHEMA)).validate(str(path))          # raises with the first violation
    xml = junitparser.JUnitXml.fromfile(str(path))
    suites = {s.name: s for s in xml}
    all_tests = [(ex, t) for ex in report["exercises"] for t in ex["tests"]]
    assert sum(s.tests for s in suites.values()) == len(all_tests)
    for ex in report["exercises"]:
        suite = suites[f"{ex['id']}_{ex['name']}"]
        props = {p.name: p.value for p in suite.properties()}
        assert float(props["score"]) == ex["score"] and float(props["max_score"]) == ex["max_score"]
        cases = list(suite)
        assert [c.name for c in cases] == [t["name"] for t in ex["tests"]]
        for case, t in zip(cases, ex["tests"]):
            kinds = {type(r).__name__ for r in case.result}
            if t["passed"]:
                assert not kinds and case.is_passed
            elif ex["id"] == "04":                       # it ended the process: no answer at all
                assert kinds == {"Error"}, (t["name"], kinds)
            else:                                        # a wrong answer
                assert kinds == {"Failure"}, (t["name"], kinds)
            assert 0 <= case.time < 120
            assert case.system_out and f"/{t['max_score']:g} points" in case.system_out
    assert sum(c.time for s in suites.values() for c in s) > 0, "times are real"
    root = tree.getroot()
    assert root.find("./testsuite/testcase/properties") is None
    assert int(root.get("errors")) == len(root.findall("./testsuite/testcase/error")) > 0
    assert int(root.get("failures")) == len(root.findall("./testsuite/testcase/failure")) > 0


def autograder_tree(tmp_path):
    proc = run(["make", "-s", "gradescope", f"PYTHON={sys.executable}"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    root = tmp_path / "autograder"
    with zipfile.ZipFile(REPO / "dist" / "gradescope.zip") as z:
        names = z.namelist()
        assert {"setup.sh", "run_autograder", "requirements.txt", "grader/__main__.py", "grader/collect.py"} <= set(names)
        assert not [n for n in names if n.startswith(("solutions/", "tests/"))]
        z.extractall(root / "source")
    (root / "source" / "run_autograder").chmod(0o755)
    (root / "source" / "setup.sh").chmod(0o755)
    return root


@needs_pick
def test_run_autograder_finds_a_submission_nested_at_any_depth(tmp_path):
    root = autograder_tree(tmp_path)
    nested = root / "submission" / "attention-student-main"              # the repository, one folder deep
    (nested / "exercises").mkdir(parents=True)
    shutil.copy(REPO / "solutions" / PICK[0].filename, nested / "exercises")
    shutil.copy(REPO / "solutions" / PICK[1].filename, root / "submission")                  # and one loose
    env = {"AUTOGRADER_ROOT": str(root), "PYTHON": sys.executable, "GRADER_SEED": "5",
           "GRADER_EXERCISES": f"{PICK[0].id} {PICK[1].id}", **ENV}
    proc = run([str(root / "source" / "run_autograder")], cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    gs = json.loads((root / "results" / "results.json").read_text())
    assert gs["score"] == 20.0 and all(t["status"] == "passed" for t in gs["tests"]), gs["output"]
    assert gs["extra_data"]["seed"] == 5 and gs["tests"][0]["number"] == f"{int(PICK[0].id)}.1"
    assert gs["stdout_visibility"] == "hidden" and "--seed" not in gs["output"]    # nothing students cannot act on
    # Two different files with one exercise's name: refused, and the message says which.
    (root / "submission" / PICK[0].filename).write_text(PARTIAL_SOFTMAX)
    proc = run([str(root / "source" / "run_autograder")], cwd=tmp_path, env=env)
    gs = json.loads((root / "results" / "results.json").read_text())
    assert gs["score"] == 0 and gs["tests"] == [], gs
    assert "ambiguous" in gs["output"] and f"attention-student-main/exercises/{PICK[0].filename}" in gs["output"]


def test_setup_sh_stops_early_on_an_old_python(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "apt-get").write_text("#!/bin/sh\nexit 0\n")
    (fake / "python3").write_text('#!/bin/sh\nif [ "$1" = "-V" ]; then echo "Python 3.8.10"; exit 0; fi\n'
                                  'if [ "$1" = "-m" ]; then echo "venv reached" >&2; exit 0; fi\nexit 1\n')
    for f in fake.iterdir():
        f.chmod(0o755)
    proc = run(["bash", str(REPO / "gradescope" / "setup.sh")], cwd=tmp_path,
               env={"PATH": f"{fake}:/usr/bin:/bin", "AUTOGRADER_ROOT": str(tmp_path / "ag")})
    assert proc.returncode == 1
    assert "3.8.10" in proc.stderr and "Ubuntu 22.04 or 24.04" in proc.stderr
    assert "venv reached" not in proc.stderr


def test_student_template_ships_public_tests_and_no_hidden_ones(tmp_path):
    dest = tmp_path / "student"
    proc = run(["make", "-s", "student-template", f"DEST={dest}", f"PYTHON={sys.executable}"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for kept in ("Makefile", "README.md", "requirements.txt", ".gitignore", ".github/workflows/classroom.yml",
                 "grader/__main__.py", "exercises"):
        assert (dest / kept).exists(), kept
    for gone in ("solutions", "tests", "bench", ".venv", "requirements-dev.txt", "grader/public"):
        assert not (dest / gone).exists(), gone
    assert sorted(p.name for p in (dest / "exercises").glob("*.py")) == \
        sorted(p.name for p in (REPO / "exercises").glob("*.py"))
    assert sorted(p.name for p in (dest / "exercises").rglob("*.md")) == \
        sorted(p.name for p in (REPO / "exercises").rglob("*.md"))
    references = {p.read_bytes() for p in (REPO / "solutions").glob("*.py")}
    hidden = {p.read_bytes() for p in (REPO / "grader" / "tests").glob("test_[0-9][0-9]_*.py")}
    shipped = {p.read_bytes() for p in dest.rglob("*.py")}
    assert not shipped & references, "a reference leaked"
    assert not shipped & hidden, "a hidden test module leaked"
    public = sorted(p.name for p in (dest / "grader" / "tests").glob("test_[0-9][0-9]_*.py"))
    assert public == sorted(p.name for p in (REPO / "grader" / "tests").glob("test_[0-9][0-9]_*.py"))
    readme = (dest / "README.md").read_text()
    for command in ("make solution", "make bench", "make mutants", "--path solutions", "## For instructors"):
        assert command not in readme, command
    assert "GitHub Classroom" in readme and "public tests only" in readme
    # The public tests: full marks for the references, nothing for the stubs.
    for ex in SOLVED:
        shutil.copy(REPO / "solutions" / ex.filename, dest / "exercises")
    proc = run([sys.executable, "-m", "grader", "--seed", "2", "--json", "r.json"], cwd=dest, env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((dest / "r.json").read_text())["score"] == 10.0 * len(SOLVED)
    for ex in SOLVED:
        shutil.copy(REPO / "exercises" / ex.filename, dest / "exercises")
    run([sys.executable, "-m", "grader", "--seed", "2", "--json", "r.json"], cwd=dest, env=ENV)
    stub = json.loads((dest / "r.json").read_text())
    assert [t["name"] for e in stub["exercises"] for t in e["tests"] if t["passed"]] == []


def test_self_study_template_keeps_the_hidden_tests(tmp_path):
    dest = tmp_path / "alone"
    proc = run(["make", "-s", "student-template", f"DEST={dest}", "SELF_STUDY=1", f"PYTHON={sys.executable}"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for p in (REPO / "grader" / "tests").glob("test_[0-9][0-9]_*.py"):
        assert (dest / "grader" / "tests" / p.name).read_bytes() == p.read_bytes()
    assert not (dest / "solutions").exists()
    from grader.template import audit
    assert audit(dest) == []            # either template counts as untouched


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
    # erin: a repository as `gh classroom clone student-repos` makes it, grader/ edited to pass everything
    from grader.template import write
    erin = write(subs / "attention-erin")
    for ex in PICK:
        shutil.copy(REPO / "solutions" / ex.filename, erin / "exercises")
    session = erin / "grader" / "session.py"
    session.write_text(session.read_text().replace("passed=call.excinfo is None", "passed=True"))
    # frank: patches the comparisons the grader would use (tampering)
    (subs / "frank").mkdir()
    shutil.copy(REPO / "tests" / "cheats" / "05_softmax__patch_comparisons.py", subs / "frank" / "05_softmax.py")
    out, reports = tmp_path / "grades.csv", tmp_path / "feedback"
    proc = run([sys.executable, "-m", "grader", "batch", str(subs), "05", other.id, "--csv", str(out),
                "--seed", "9", "--jobs", "2", "--reports", str(reports)], env={"GRADER_TIMEOUT": "2", **ENV})
    assert proc.returncode == 0, proc.stderr
    assert "[6/6]" in proc.stderr
    rows = {r["student"]: r for r in csv.DictReader(out.open())}
    assert list(next(csv.reader(out.open()))) == ["student", "05", other.id, "total", "status", "error",
                                                 "audit", "commit", "commit_time", "seed"]
    assert set(rows) == {"alice", "bob", "carol", "'=dave", "attention-erin", "frank"}
    cell = {name: (float(r["05"]), float(r[other.id]), float(r["total"]), r["status"]) for name, r in rows.items()}
    assert cell["alice"] == (10.0, 10.0, 20.0, "ok") and rows["alice"]["audit"] == ""
    assert 0 < cell["bob"][0] < 10 and cell["bob"][1] == 0 and cell["bob"][2] == cell["bob"][0]
    assert cell["carol"] == (0.0, 0.0, 0.0, "broken") and "SyntaxError" in rows["carol"]["error"]
    assert cell["'=dave"] == (0.0, 10.0, 10.0, "timeout") and "did not finish" in rows["'=dave"]["error"]
    assert cell["attention-erin"] == (10.0, 10.0, 20.0, "ok")     # graded by the instructor's grader
    assert rows["attention-erin"]["audit"] == "modified: grader/session.py"
    assert cell["frank"][3] == "tampering" and cell["frank"][0] == 0 and "tampering" in rows["frank"]["error"]
    # --reports: each student's own page and JSON report, to hand back, named after the folder
    assert sorted(p.name for p in reports.iterdir()) == sorted(
        f"{name}.{kind}" for name in ("alice", "bob", "carol", "=dave", "attention-erin", "frank")
        for kind in ("txt", "json"))
    for name, r in rows.items():
        report = json.loads((reports / f"{name.lstrip(chr(39))}.json").read_text())
        assert report["seed"] == 9 and report["score"] == float(r["total"]), name
    bob = (reports / "bob.txt").read_text()
    assert f"Total {cell['bob'][2]:g} / 20" in bob and "05 softmax" in bob and "(seed 9)" in bob
    failing = [t for t in json.loads((reports / "bob.json").read_text())["exercises"][0]["tests"] if not t["passed"]]
    assert failing and failing[0]["message"].splitlines()[0] in bob and "\033[" not in bob
    assert "SyntaxError" in (reports / "carol.txt").read_text()


def test_batch_cuts_a_long_error_with_a_visible_marker():
    from grader.batch import ERROR_LIMIT, cut
    assert cut("x" * 10) == "x" * 10
    long = cut("y" * (ERROR_LIMIT + 123))
    assert long.startswith("y" * ERROR_LIMIT) and long.endswith("[... 123 more characters cut]")


ZYGOTE_DIES = """
import json, os, signal, sys
from pathlib import Path
import grader.batch as batch
from grader.exercises import select

def kill_zygote(pool):
    os.killpg(pool.zygote.process.pid, signal.SIGKILL)
    pool.zygote.process.wait()

start = batch.Pool.start
def start_then_kill(pool, folder, *rest):
    if pool.started == 2:       # between two submissions
        kill_zygote(pool)
    start(pool, folder, *rest)
    if pool.started == 1:       # while the first is graded
        kill_zygote(pool)
batch.Pool.start = start_then_kill
folders = [Path(p) for p in sys.argv[1:]]
print(json.dumps(batch.grade_all(folders, select(["02"]), 5, 1, 300, ["02"])))
"""


def test_batch_replaces_a_zygote_that_dies_and_grades_again_what_it_cut_short(tmp_path):
    folders = []
    for name in ("ann", "bob"):
        (tmp_path / name).mkdir()
        shutil.copy(REPO / "solutions" / "02_split_heads.py", tmp_path / name)
        folders.append(str(tmp_path / name))
    proc = run([sys.executable, "-c", ZYGOTE_DIES, *folders], env=ENV)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [(r["student"], r["02"], r["status"]) for r in rows] == [("ann", 10.0, "ok"), ("bob", 10.0, "ok")]
    assert proc.stderr.count("zygote died") == 2, proc.stderr


def test_batch_kills_a_submission_past_its_timeout(tmp_path):
    (tmp_path / "class" / "slow").mkdir(parents=True)
    (tmp_path / "class" / "slow" / EXERCISES[0].filename).write_text("while True:\n    pass\n")
    out = tmp_path / "grades.csv"
    proc = run([sys.executable, "-m", "grader", "batch", str(tmp_path / "class"), EXERCISES[0].id,
                "--csv", str(out), "--seed", "1", "--timeout", "0.3", "--reports", str(tmp_path / "feedback")])
    assert proc.returncode == 0, proc.stderr
    (row,) = csv.DictReader(out.open())
    assert row["student"] == "slow" and row["status"] == "timeout" and row["total"] == ""
    assert "0.3 s" in row["error"]
    # nothing was graded, so no JSON; the page says why
    assert [p.name for p in (tmp_path / "feedback").iterdir()] == ["slow.txt"]
    assert (tmp_path / "feedback" / "slow.txt").read_text().startswith("Not graded: timeout. grading took longer")


def test_batch_reports_folder_that_cannot_be_made_is_a_clear_error(tmp_path):
    (tmp_path / "class" / "ann").mkdir(parents=True)
    (tmp_path / "taken").write_text("a file, not a folder")
    proc = run([sys.executable, "-m", "grader", "batch", str(tmp_path / "class"), "--csv", str(tmp_path / "g.csv"),
                "--reports", str(tmp_path / "taken")])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"cannot write reports to {tmp_path / 'taken'}" in proc.stderr, proc.stderr
    assert not (tmp_path / "g.csv").exists()
