"""GitHub Classroom: the workflow lints; run step by step (tests/workflow_emulator.py) with the real
autograding-grading-reporter under node, the course's grader records exactly the true grade, whatever
the student's grader/ holds; the reporter's table, "Total points" lines and notice all show it."""
import base64
import json
import os
import random
import re
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from helpers import EXERCISES, REPO, grade, run_grader
from grader.seeds import course_seed
from mutation import MUTANTS, variants
from workflow_emulator import REPORTER, Job, emulated_venv, reporter_figures

WORKFLOW = REPO / ".github" / "workflows" / "classroom.yml"
SOLVED = [ex for ex in EXERCISES if (REPO / "solutions" / ex.filename).is_file()]
RUNNERS = [f"ex{ex.id}" for ex in EXERCISES] + ["audit"]
MAX = 10 * len(EXERCISES)          # every exercise is worth 10
ENV = {"GRADER_ALLOW_WEAK_ISOLATION": "1", "NO_COLOR": "1"}
SHA = "1c0ffee5d2"
COURSE_REF = "0123456789abcdef0123456789abcdef01234567"
SEED = course_seed()             # the workflow grades with the course's seed (grader/course.cfg)
needs_node = pytest.mark.skipif(
    not shutil.which("node") or not REPORTER.is_file(),
    reason=f"node or the reporter bundle is missing ({REPORTER}): the reporter checks need both")

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


def steps():
    return {s.get("id", s["name"]): s for s in yaml.safe_load(WORKFLOW.read_text())["jobs"]["run-autograding-tests"]["steps"]}


def test_workflow_grades_once_with_the_course_grader_and_always_reports():
    text = WORKFLOW.read_text()
    for needle in ("name: Autograding Tests", "- push", "- repository_dispatch", "checks: write",
                   "if: github.actor != 'github-classroom[bot]'", "--index-url https://download.pytorch.org/whl/cpu",
                   "secrets.COURSE_GRADER_TOKEN", "vars.COURSE_GRADER_REPO", "vars.COURSE_GRADER_REF"):
        assert needle in text, needle
    s = steps()
    grading = [k for k, v in s.items() if re.search(r"-m grader(?![.\w])", v.get("run", ""))]
    assert grading == ["grade"], "one grading step, one interpreter, torch imported once"
    assert "--classroom" in s["grade"]["run"] and "--audit" in s["grade"]["run"]
    assert s["grade"]["working-directory"] == "${{ env.GRADER_HOME }}"
    assert s["course"]["with"]["ref"] and s["course"]["with"]["path"] == "course"
    reporter = next(v for v in s.values() if v.get("uses", "").startswith("classroom-resources/autograding-grading-reporter@"))
    assert reporter["if"] == "always()", "the reporter records a grade whatever happened before it"
    assert reporter["with"]["runners"].split(",") == RUNNERS
    for runner in RUNNERS:
        assert reporter["env"][f"{runner.upper()}_RESULTS"] == \
            f"${{{{ steps.grade.outputs.{runner} || steps.fallback.outputs.{runner} }}}}"
    assert s["fallback"]["if"].startswith("always()")
    assert f"range(1, {len(EXERCISES) + 1})" in s["fallback"]["run"]
    save = next(v for v in s.values() if v.get("uses", "").startswith("actions/cache/save@"))
    assert save["if"].startswith("always()"), "the virtualenv is saved even when the grade is partial"


def emulate(tmp_path, student, **kw):
    args = dict(course=REPO, variables={"COURSE_GRADER_REPO": "teacher/attention-course",
                                        "COURSE_GRADER_REF": COURSE_REF},
                secrets={"COURSE_GRADER_TOKEN": "read-only"}, sha=SHA, overrides={"Install": emulated_venv})
    args.update(kw)
    old = {k: os.environ.get(k) for k in ENV}
    os.environ.update(ENV)
    try:
        job = Job(WORKFLOW, tmp_path / "ws", student, **args).run()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    outcomes = {name: outcome for name, outcome, _, _ in job.log}
    return job, outcomes, job.log[-1][3]


def commit(repo, message):
    """Commits everything in repo (made a git repository the first time), as a student pushes it."""
    if not (repo / ".git").exists():
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    git = ["git", "-C", str(repo), "-c", "user.name=student", "-c", "user.email=student@example.com"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", message], check=True)


def student_repo(tmp_path, files):
    """The template as Classroom makes it (one commit), then the student's files in a second."""
    from grader.template import write
    repo = write(tmp_path / "student")
    commit(repo, "Initial commit")
    for name, content in files.items():
        target = repo / "exercises" / name
        if isinstance(content, Path):
            shutil.copy(content, target)
        else:
            target.write_text(content)
    commit(repo, "my exercises")
    return repo


def check_reporter_shows(text, report):
    """The table, the 'Total points' lines and the notice all show the report's grade exactly."""
    table, totals, notice, table_total = reporter_figures(text)
    scores = {f"ex{ex['id']}": ex["score"] for ex in report["exercises"]}
    for runner, score in scores.items():
        assert float(table[runner]) == score and len(table[runner]) <= 5, (runner, table[runner], score)
        assert totals[runner] == f"{score:.2f}", (runner, totals[runner], score)
    assert notice is not None, text[-2000:]
    assert float(notice[0]) == report["score"] and re.fullmatch(r"\d+(\.\d{1,2})?", notice[0]), notice
    assert float(notice[1]) == report["max_score"]
    assert float(table_total[0]) == report["score"] and re.fullmatch(r"\d+(\.\d{1,2})?", table_total[0])


@needs_node
@pytest.mark.skipif(len(SOLVED) < 6, reason="needs the reference solutions")
def test_a_student_grader_edited_to_pass_everything_still_records_the_true_grade(tmp_path):
    files = {ex.filename: REPO / "solutions" / ex.filename for ex in SOLVED[:4]}
    files["05_softmax.py"] = PARTIAL_SOFTMAX
    student = student_repo(tmp_path, files)
    session = student / "grader" / "session.py"
    source = session.read_text()
    assert "passed=call.excinfo is None" in source
    session.write_text(source.replace("passed=call.excinfo is None", "passed=True"))
    (student / ".github" / "workflows" / "classroom.yml").write_text("# edited\n")
    # The student's own grader would report full marks (here on a stub it never touched):
    own = subprocess.run([sys.executable, "-m", "grader", EXERCISES[-1].id, "--path", "exercises", "--seed", str(SEED),
                          "--json", "own.json"], cwd=student, capture_output=True, text=True, timeout=600,
                         env={**os.environ, **ENV})
    assert json.loads((student / "own.json").read_text())["score"] == 10.0, own.stdout + own.stderr
    (student / "own.json").unlink()
    commit(student, "edit the grader and the workflow")

    job, outcomes, text = emulate(tmp_path, student)
    assert outcomes["Grade every exercise"] == "success", job.log
    assert outcomes["Record 0, with the reason, if the grading step did not report"] == "skipped"
    _, truth, out = grade(student / "exercises", seed=SEED, env=ENV)
    assert 0 < truth["score"] < MAX, out
    check_reporter_shows(text, truth)
    assert "changed from the course template: modified: grader/session.py" in text
    assert "changed from the course template: modified: .github/workflows/classroom.yml" in text
    assert outcomes["Autograding Reporter"] == "failure"       # the run is marked failed for the teacher


@needs_node
def test_a_missing_exercises_folder_records_zero_with_its_reason(tmp_path):
    student = student_repo(tmp_path, {})
    shutil.rmtree(student / "exercises")
    commit(student, "no exercises")
    job, outcomes, text = emulate(tmp_path, student)
    assert outcomes["Grade every exercise"] == "success", job.log
    assert f"::notice title=Autograding complete::Points 0/{MAX}" in text
    assert "is missing: not attempted" in text


@needs_node
def test_a_grading_step_that_dies_still_records_zero_and_saves_the_venv(tmp_path):
    student = student_repo(tmp_path, {})

    def broken_install(job, step):
        job.steps[step["id"]] = {"outputs": {}, "outcome": "failure"}
        return "failure", "pip: no network"
    job, outcomes, text = emulate(tmp_path, student, overrides={"Install": broken_install})
    assert outcomes["Grade every exercise"] == "skipped"
    assert outcomes["Record 0, with the reason, if the grading step did not report"] == "success"
    assert outcomes["Autograding Reporter"] == "failure" and f"Points 0/{MAX}" in text
    assert "install 'failure'" in text
    # A failed grade still saves the venv (the save step waits only for the install), and the
    # next push restores it instead of installing.
    def partial_grade(job, step):
        job.steps[step["id"]] = {"outputs": {}, "outcome": "failure"}
        return "failure", "grading failed"
    quick = {"Install": emulated_venv, "Grade": partial_grade}
    job, outcomes, text = emulate(tmp_path / "again", student, cache_dir=tmp_path / "cache", overrides=quick)
    assert outcomes["Save the virtualenv, whatever the grade"] == "success"
    assert outcomes["Autograding Reporter"] == "failure" and f"Points 0/{MAX}" in text
    def verified(job, step):       # the emulated venv is no real venv: tests/test_platforms.py checks the check
        return "success", "verified (emulated)", {"trusted": "1"}
    job, outcomes, text = emulate(tmp_path / "third", student, cache_dir=tmp_path / "cache",
                                  overrides={**quick, "Verify": verified})
    assert outcomes["Restore the grader's virtualenv"] == "success"
    assert outcomes["Install CPU-only PyTorch and the grader's requirements"] == "skipped"   # a cache hit
    assert outcomes["Save the virtualenv, whatever the grade"] == "skipped"


def random_submission(root, rng):
    """Each exercise at random: the reference, the stub, a known mistake, missing, or not loading."""
    root.mkdir(parents=True)
    mutants = variants(MUTANTS)
    for ex in EXERCISES:
        mine = [v for v in mutants if v.id == ex.id]
        pick = rng.choice(["reference", "stub", "mutant", "mutant", "missing", "broken"])
        mutant = rng.choice(mine) if mine else None
        source = {"reference": REPO / "solutions" / ex.filename, "stub": REPO / "exercises" / ex.filename}.get(pick)
        if pick == "broken":
            (root / ex.filename).write_text("def oops(:\n")
        elif pick == "mutant" and mutant:
            (root / ex.filename).write_text(mutant.text)
        elif source is not None and source.is_file():
            shutil.copy(source, root / ex.filename)
    return root


@needs_node
@pytest.mark.skipif(len(SOLVED) < len(EXERCISES), reason="needs every reference solution")
@pytest.mark.parametrize("draw", [int(os.environ.get("GRADER_TEST_DRAW", "1"))])
def test_reporter_shows_the_exact_grade_for_random_partial_submissions(tmp_path, draw):
    sub = random_submission(tmp_path / "sub", random.Random(draw))
    out = tmp_path / "github_output"
    out.write_text("")
    code, text = run_grader(["--path", str(sub), "--seed", str(draw), "--classroom", "--json", str(tmp_path / "r.json")],
                            env={**os.environ, **ENV, "GITHUB_OUTPUT": str(out)})
    assert code == 0, text
    report = json.loads((tmp_path / "r.json").read_text())
    pairs = dict(line.split("=", 1) for line in out.read_text().splitlines())
    runners = [f"ex{ex.id}" for ex in EXERCISES]
    env = {**os.environ, "INPUT_RUNNERS": ",".join(runners),
           **{f"{r.upper()}_RESULTS": pairs[r] for r in runners}}
    node = subprocess.run(["node", str(REPORTER)], env=env, capture_output=True, text=True, timeout=120)
    check_reporter_shows(node.stdout, report)
    assert 0 < report["score"] < MAX


def test_each_exercise_is_split_into_entries_of_one_weight():
    from grader.formats import classroom
    weights = [1.0, 1.75, 2.25, 1.75, 1.5, 1.25, 0.5]
    for passed in ([True] * 7, [True, False] * 3 + [True], [False] * 7):
        tests = [{"name": f"t{i}", "description": f"t{i}", "category": "edge", "passed": p, "kind": "" if p else "fail",
                  "score": w if p else 0.0, "max_score": w, "message": "" if p else "wrong"}
                 for i, (w, p) in enumerate(zip(weights, passed))]
        score = sum(w for w, p in zip(weights, passed) if p)
        data = {"score": score, "max_score": 10.0, "seed": 1, "exercises": [
            {"id": "05", "name": "softmax", "file": "05_softmax.py", "score": score, "max_score": 10.0,
             "status": "in progress", "error": "", "tests": tests}]}
        result = classroom(data)["ex05"]
        assert len(result["tests"]) == 40 and len({t["score"] for t in result["tests"] if t["status"] == "pass"}) <= 1
        total = 0
        for t in result["tests"]:
            total += t["score"]
        assert total == score
        assert sum(t["status"] == "pass" for t in result["tests"]) / 40 * 10 == score   # the reporter's table


def test_classroom_without_github_output_prints_the_lines(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_OUTPUT"}
    code, text = run_grader([EXERCISES[0].id, "--path", str(tmp_path), "--seed", "1", "--classroom"],
                            env={**env, **ENV})
    assert code == 0           # the result carries the verdict; the step itself succeeds
    pairs = dict(ln.split("=", 1) for ln in text.splitlines() if re.match(r"^(ex\d\d|result|graded)=", ln))
    results = json.loads(base64.b64decode(pairs[f"ex{EXERCISES[0].id}"]))
    assert pairs["result"] == pairs[f"ex{EXERCISES[0].id}"] and pairs["graded"] == "1"
    assert results["status"] == "fail" and sum(t["score"] for t in results["tests"]) == 0
    assert results["max_score"] == 10.0 and all(t["line_no"] == 0 for t in results["tests"])


def test_fallback_needs_no_torch_and_covers_every_runner(tmp_path):
    out = tmp_path / "o"
    out.write_text("")
    proc = subprocess.run([sys.executable, "-S", "-m", "grader.formats", "fallback", "no venv"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "GITHUB_OUTPUT": str(out)})
    assert proc.returncode == 0, proc.stderr
    pairs = dict(ln.split("=", 1) for ln in out.read_text().splitlines())
    assert sorted(pairs) == sorted(RUNNERS)
    assert all(json.loads(base64.b64decode(v))["status"] == "fail" for v in pairs.values())


def test_exact_sums_over_random_patterns():
    """20,000 random pass/fail patterns over the real weights: every float total is exact."""
    from grader.points import on_grid
    rng = random.Random(0)
    weights = {ex.id: on_grid(module_weights(ex), 10.0) for ex in EXERCISES}
    flat = [w for ws in weights.values() for w in ws]
    quarters = [round(w * 4) for w in flat]
    assert [q / 4 for q in quarters] == flat
    for _ in range(20_000):
        bits = rng.getrandbits(len(flat))
        total, exact = 0.0, 0
        for i, w in enumerate(flat):
            if bits >> i & 1:
                total += w
                exact += quarters[i]
        assert total == Fraction(exact, 4)


def module_weights(ex):
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"weights_{ex.id}", ex.test_module)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [fn.grade[1] for name, fn in vars(module).items() if name.startswith("test_") and hasattr(fn, "grade")]


def test_every_exercise_weighs_exactly_ten_in_quarters():
    from grader.points import on_grid
    for ex in EXERCISES:
        weights = on_grid(module_weights(ex), 10.0)
        assert all(w > 0 and (w * 4).is_integer() for w in weights), (ex.id, weights)
        total = 0.0
        for w in weights:
            total += w
        assert total == 10.0, (ex.id, weights)
