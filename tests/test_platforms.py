"""The course on every platform: one course seed gives one grade in Classroom, Gradescope and batch;
the Classroom workflow without a course grader, in trial mode and with a poisoned venv cache; the
audit of the history; the grader-only export; the graded template; Gradescope's image self-test."""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO
from test_classroom import ENV, PARTIAL_SOFTMAX, commit, emulate, needs_node, student_repo
from test_course_tools import run
from workflow_emulator import reporter_figures

from grader.course import export_grader
from grader.history import history_findings
from grader.seeds import BadConfig, course_seed, default_seed
from grader.template import files as template_files
from grader.venvcheck import Untrusted, venv_digest, verify

COURSE_SEED = course_seed()
HAS_05 = (REPO / "solutions" / "05_softmax.py").is_file()


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=s", "-c", "user.email=s@example.com", *args],
                          check=True, capture_output=True, text=True).stdout


def only(repo, keep):
    """Leaves only the exercise file `keep` in the repository's exercises/ (one exercise per grade)."""
    for stub in (repo / "exercises").glob("[0-9][0-9]_*.py"):
        if stub.name != keep:
            stub.unlink()


def grade_log(job):
    return next(text for name, _, _, text in job.log if name == "Grade every exercise")


def autograder_tree(tmp_path, env=None):
    """/autograder as Gradescope makes it from `make gradescope`'s zip (built in tmp_path)."""
    import zipfile
    proc = run(["make", "-s", "gradescope", f"PYTHON={sys.executable}", f"DIST={tmp_path / 'dist'}"], env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    root = tmp_path / "autograder"
    with zipfile.ZipFile(tmp_path / "dist" / "gradescope.zip") as z:
        z.extractall(root / "source")
    for script in ("run_autograder", "setup.sh"):
        (root / "source" / script).chmod(0o755)
    return root


# --- one seed, one grade ------------------------------------------------------------------------

def test_the_course_seed_is_set_in_one_place_and_salted_only_by_the_course(tmp_path):
    cfg = tmp_path / "course.cfg"
    cfg.write_text("# a comment\nCOURSE_SEED=4242\n")
    assert course_seed(cfg, environ={}) == 4242
    salted = course_seed(cfg, environ={"COURSE_SEED_SALT": "org secret"})
    assert salted != 4242 and 0 < salted < 10**6
    assert salted == course_seed(cfg, environ={"COURSE_SEED_SALT": "org secret"})
    assert salted != course_seed(cfg, environ={"COURSE_SEED_SALT": "another"})
    assert course_seed(tmp_path / "none.cfg", environ={}) is None            # a student template has none
    for bad in ("COURSE_SEED=0x10\n", "COURSE_SEED=0\n", "seed: 3\n"):
        cfg.write_text(bad)
        with pytest.raises(BadConfig, match="course.cfg"):
            course_seed(cfg, environ={})
    assert COURSE_SEED is not None and default_seed(course_mode=True) == course_seed()
    workflow = (REPO / ".github" / "workflows" / "classroom.yml").read_text()
    commands = [line for line in workflow.splitlines() if not line.strip().startswith("#")]
    assert "GITHUB_SHA" not in workflow and "github.sha" not in workflow
    assert not [line for line in commands if "--seed" in line]     # the grader takes the course's seed


def test_make_gradescope_carries_the_salt_so_gradescope_draws_the_classroom_seed(tmp_path):
    root = autograder_tree(tmp_path, env={"COURSE_SEED_SALT": "org secret"})
    baked = course_seed(root / "source" / "grader" / "course.cfg", environ={})
    assert baked == course_seed(environ={"COURSE_SEED_SALT": "org secret"}) != COURSE_SEED


@needs_node
@pytest.mark.skipif(not HAS_05, reason="needs the reference for 05")
def test_one_submission_gets_one_grade_in_classroom_gradescope_and_batch(tmp_path):
    course = tmp_path / "attention-grader"
    export_grader(course)
    student = student_repo(tmp_path, {"05_softmax.py": PARTIAL_SOFTMAX})
    only(student, "05_softmax.py")
    # An edit of the workflow in one commit, undone in the next: the final tree is the template's.
    workflow = student / ".github" / "workflows" / "classroom.yml"
    original = workflow.read_text()
    workflow.write_text(original.replace("--classroom", "--classroom --seed 1"))
    commit(student, "grade with my seed")
    edit = git(student, "rev-parse", "--short=12", "HEAD").strip()
    workflow.write_text(original)
    commit(student, "undo")
    sha = "fffffff" + "0" * 33                  # the old seed would have been 16#fffffff
    job, outcomes, text = emulate(tmp_path / "classroom", student, course=course, sha=sha)
    assert outcomes["Grade every exercise"] == "success", job.log
    seeds = set(re.findall(r"\(seed (\d+)\)", grade_log(job)))
    assert seeds == {str(COURSE_SEED)} and COURSE_SEED != int(sha[:7], 16)
    _, totals, _, _ = reporter_figures(text)
    classroom = float(totals["ex05"])
    assert 0 < classroom < 10, text[-3000:]
    assert f"history: .github/workflows/classroom.yml differs from the course template in commit {edit}" in text

    # Gradescope: the zip, the same file submitted, no seed given.
    root = autograder_tree(tmp_path)
    (root / "submission").mkdir()
    shutil.copy(student / "exercises" / "05_softmax.py", root / "submission")
    proc = run([str(root / "source" / "run_autograder")], cwd=tmp_path,
               env={"AUTOGRADER_ROOT": str(root), "PYTHON": sys.executable, "GRADER_EXERCISES": "05", **ENV})
    gs = json.loads((root / "results" / "results.json").read_text())
    assert gs["score"] == classroom and gs["extra_data"]["seed"] == COURSE_SEED, proc.stdout + proc.stderr
    shown = gs["output"] + "".join(t["output"] for t in gs["tests"])
    assert "--seed" not in shown and "grader/tests" not in shown and gs["stdout_visibility"] == "hidden"

    # batch: the student's repository in a class folder, no --seed.
    shutil.copytree(student, tmp_path / "class" / "alice", ignore=shutil.ignore_patterns(".git"))
    proc = run([sys.executable, "-m", "grader", "batch", str(tmp_path / "class"), "05", "--csv",
                str(tmp_path / "grades.csv"), "--jobs", "1"], env=ENV)
    assert proc.returncode == 0, proc.stderr
    (row,) = csv.DictReader((tmp_path / "grades.csv").open())
    assert float(row["05"]) == classroom and f"seed {COURSE_SEED}" in proc.stderr


# --- the Classroom workflow without a course grader, in trial mode, with a poisoned cache -------

@needs_node
def test_without_a_course_grader_every_exercise_records_zero_with_the_reason(tmp_path):
    student = student_repo(tmp_path, {})
    job, outcomes, text = emulate(tmp_path / "none", student, course=None, variables={}, secrets={})
    assert outcomes["Grade every exercise"] == "skipped"
    assert outcomes["Install CPU-only PyTorch and the grader's requirements"] == "skipped"
    assert "::notice title=Autograding complete::Points 0/150" in text
    assert "the course grader is not configured" in text
    job, outcomes, text = emulate(tmp_path / "badref", student, variables={"COURSE_GRADER_REPO": "t/g",
                                                                           "COURSE_GRADER_REF": "main"})
    assert outcomes["Grade every exercise"] == "skipped" and "Points 0/150" in text
    assert "full 40-character commit SHA" in text


@needs_node
@pytest.mark.skipif(not HAS_05, reason="needs the reference for 05")
def test_trial_mode_grades_with_the_repositorys_own_grader_and_says_so(tmp_path):
    student = student_repo(tmp_path, {"05_softmax.py": REPO / "solutions" / "05_softmax.py"})
    only(student, "05_softmax.py")
    commit(student, "only 05")
    job, outcomes, text = emulate(tmp_path / "trial", student, course=None, secrets={},
                                  variables={"COURSE_GRADER_TRIAL": "1"})
    assert outcomes["Grade every exercise"] == "success", job.log
    _, totals, _, _ = reporter_figures(text)
    assert totals["ex05"] == "10.00" and "trial mode: graded with this repository's own grader/" in text


def tiny_venv(path, content=b"VALUE = 1\n"):
    """A real venv (python -m venv) holding one distribution, fakepkg 1.0, with its RECORD."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    site = next(path.glob("lib/python3.*/site-packages"))
    (site / "fakepkg").mkdir()
    (site / "fakepkg" / "__init__.py").write_bytes(content)
    info = site / "fakepkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.0\n")
    write_record(site)
    return site


def write_record(site):
    from grader.venvcheck import _file_hash
    info = site / "fakepkg-1.0.dist-info"
    rows = [f"{p.relative_to(site).as_posix()},{_file_hash(p)},{p.stat().st_size}"
            for p in sorted(site.rglob("*")) if p.is_file() and p.name != "RECORD" and p.suffix != ".pyc"]
    (info / "RECORD").write_text("\n".join(rows + ["fakepkg-1.0.dist-info/RECORD,,"]) + "\n")


def test_a_restored_venv_is_verified_file_by_file(tmp_path):
    pins = tmp_path / "requirements.txt"
    pins.write_text("fakepkg==1.0\n")
    venv = tmp_path / "venv"
    site = tiny_venv(venv)
    trusted = verify(venv, pins, purge_bytecode=True)
    assert trusted == venv_digest(site) and verify(venv, pins, digest=trusted) == trusted

    def refused(match, **kw):
        with pytest.raises(Untrusted, match=match):
            verify(venv, pins, purge_bytecode=True, **kw)

    module = site / "fakepkg" / "__init__.py"
    module.write_text("VALUE = 2\n")                                 # a file changed
    refused("fakepkg/__init__.py differs from what its distribution's RECORD says")
    write_record(site)                                               # ... and its RECORD rewritten too:
    assert verify(venv, pins, purge_bytecode=True) != trusted        # only the course's digest tells
    refused("not the course's", digest=trusted)
    module.write_text("VALUE = 1\n")
    write_record(site)
    for dropped in ("sitecustomize.py", "evil.pth"):                 # code that runs at start-up
        (site / dropped).write_text("import os\n")
        refused(f"{dropped} belongs to no installed distribution")
        (site / dropped).unlink()
    (site / "fakepkg" / "__pycache__").mkdir()
    (site / "fakepkg" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"forged bytecode")
    assert verify(venv, pins, purge_bytecode=True) == trusted
    assert not (site / "fakepkg" / "__pycache__").exists()           # bytecode is never vouched for
    pins.write_text("fakepkg==1.1\n")
    refused("fakepkg 1.0 is installed; the course pins ==1.1")
    pins.write_text("fakepkg==1.0\n")
    python = venv / "bin" / "python"
    python.unlink()
    python.write_text("#!/bin/sh\nexec /bin/false\n")
    refused("bin/python is not a link to this interpreter")


@needs_node
def test_a_poisoned_venv_cache_is_refused_and_installed_afresh(tmp_path):
    course = tmp_path / "attention-grader"
    export_grader(course)
    (course / "requirements.txt").write_text("fakepkg==1.0\n")
    student = student_repo(tmp_path, {})
    installs = []

    def install(job, step):
        tiny_venv(Path(job.env["GRADER_VENV"]))
        installs.append(1)
        return "success", "installed fakepkg"

    quick = {"Install": install, "Grade": lambda job, step: ("failure", "not graded in this test")}
    cache = tmp_path / "cache"
    job, outcomes, _ = emulate(tmp_path / "1", student, course=course, cache_dir=cache, overrides=quick)
    assert outcomes["Save the virtualenv, whatever the grade"] == "success" and len(installs) == 1
    job, outcomes, _ = emulate(tmp_path / "2", student, course=course, cache_dir=cache, overrides=quick)
    assert outcomes["Verify the restored virtualenv"] == "success" and len(installs) == 1, job.log
    (stored,) = cache.iterdir()
    module = next(stored.glob("lib/python3.*/site-packages/fakepkg/__init__.py"))
    module.write_text("VALUE = 'poisoned'\n")                        # what an edited workflow could save
    job, outcomes, _ = emulate(tmp_path / "3", student, course=course, cache_dir=cache, overrides=quick)
    log = dict((name, text) for name, _, _, text in job.log)["Verify the restored virtualenv"]
    assert "differs from what its distribution's RECORD says" in log and "Cached virtualenv refused" in log
    assert outcomes["Install CPU-only PyTorch and the grader's requirements"] == "success" and len(installs) == 2
    venv = tmp_path / "3" / "ws" / ".grader-venv"
    assert "poisoned" not in next(venv.glob("lib/python3.*/site-packages/fakepkg/__init__.py")).read_text()


def test_the_venv_cache_key_holds_nothing_the_student_controls():
    import yaml
    listed = yaml.safe_load((REPO / ".github" / "workflows" / "classroom.yml").read_text())["jobs"][
        "run-autograding-tests"]["steps"]
    steps = {s.get("id", s["name"]): s for s in listed}
    assert steps["venv"]["with"]["key"] == "${{ steps.choose.outputs.venv-key }}"
    course_key = next(line for line in steps["choose"]["run"].splitlines() if "venv-key=$key-course" in line)
    assert "$COURSE_GRADER_REF" in course_key and "hashFiles" not in course_key and "student" not in course_key
    checkout = next(s for s in steps.values() if s.get("name") == "Checkout the student's repository")
    assert checkout["with"]["fetch-depth"] == 0


# --- the audit of the history -------------------------------------------------------------------

def test_the_history_audit_flags_an_edit_undone_later_and_allows_classroom_own_files(tmp_path):
    from grader.template import write
    repo = write(tmp_path / "student")
    assert history_findings(repo) == ["history not audited: no git history here (the workflow checks out "
                                      "with fetch-depth: 0)"]
    commit(repo, "Initial commit")
    (repo / ".github" / ".keep").write_text("")                       # GitHub Classroom's feedback branch
    (repo / "exercises" / "05_softmax.py").write_text(PARTIAL_SOFTMAX)
    commit(repo, "work")
    assert history_findings(repo) == []
    session = repo / "grader" / "session.py"
    original = session.read_text()
    session.write_text(original + "\n# passed=True\n")
    commit(repo, "edit")
    edit = git(repo, "rev-parse", "--short=12", "HEAD").strip()
    session.write_text(original)
    commit(repo, "undo")
    assert history_findings(repo) == [f"history: grader/session.py differs from the course template in commit {edit}"]
    if os.geteuid() == 0:       # the workflow's grader runs as root on the runner user's checkout
        theirs = tmp_path / "theirs"
        shutil.copytree(repo, theirs, symlinks=True)
        subprocess.run(["chown", "-R", "65534:65534", str(theirs)], check=True)
        assert history_findings(theirs) == history_findings(repo)
    # An edit made in a merge commit itself (in neither parent), undone after: the merge is named.
    git(repo, "checkout", "-q", "-b", "side")
    (repo / "exercises" / "notes.txt").write_text("side work\n")
    commit(repo, "side work")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "--no-commit", "side")
    workflow = repo / ".github" / "workflows" / "classroom.yml"
    workflow.write_text(workflow.read_text() + "# merged in\n")
    commit(repo, "merge")
    merge = git(repo, "rev-parse", "--short=12", "HEAD").strip()
    workflow.write_bytes(template_files()[".github/workflows/classroom.yml"])
    commit(repo, "undo in the merge")
    assert f"history: .github/workflows/classroom.yml differs from the course template in commit {merge}" in \
        history_findings(repo)
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow)], check=True)
    assert history_findings(shallow)[0].startswith("history not audited: a shallow clone")
    # A history rewritten from its root: the first commit itself holds an edited workflow.
    other = write(tmp_path / "rewritten")
    (other / ".github" / "workflows" / "classroom.yml").write_text("on: push\n")
    commit(other, "Initial commit")
    (other / ".github" / "workflows" / "classroom.yml").write_bytes(
        template_files()[".github/workflows/classroom.yml"])
    commit(other, "looks like the template now")
    assert [f.split(" in commit")[0] for f in history_findings(other)] == [
        "history: .github/workflows/classroom.yml differs from the course template"]


# --- the grader-only export -----------------------------------------------------------------------

def test_export_grader_writes_the_grader_and_its_hidden_tests_without_solutions_or_tests(tmp_path):
    dest = tmp_path / "attention-grader"
    proc = run([sys.executable, "-m", "grader.course", "export-grader", str(dest)])
    assert proc.returncode == 0, proc.stderr
    written = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    assert not [p for p in written if p.startswith(("solutions/", "tests/", "bench/", "dist/"))]
    assert not [p for p in written if "__pycache__" in p or p.endswith(".pyc")]
    for hidden in (REPO / "grader" / "tests").glob("test_[0-9][0-9]_*.py"):
        assert (dest / "grader" / "tests" / hidden.name).read_bytes() == hidden.read_bytes()
    assert {"grader/course.cfg", "requirements.txt", ".github/workflows/classroom.yml", "README.md"} <= written
    references = {p.read_bytes() for p in (REPO / "solutions").glob("*.py")}
    assert not references & {(dest / p).read_bytes() for p in written}
    proc = run([sys.executable, "-m", "grader.course", "export-grader", str(dest)])
    assert proc.returncode == 2 and "not an empty folder" in proc.stderr


# --- Gradescope's image self-test -------------------------------------------------------------------

def fake_image(tmp_path):
    """apt-get that does nothing; a python3 whose venv's pip installs nothing and whose python is
    this interpreter (the one with torch): setup.sh runs through, to its self-test."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "apt-get").write_text("#!/bin/sh\nexit 0\n")
    (fake / "python3").write_text(f"""#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin"
  printf '#!/bin/sh\\nif [ "$1" = "-m" ] && [ "$2" = "pip" ]; then exit 0; fi\\nexec {sys.executable} "$@"\\n' > "$3/bin/python"
  chmod +x "$3/bin/python"; exit 0
fi
exec {sys.executable} "$@"
""")
    for f in fake.iterdir():
        f.chmod(0o755)
    return fake


@pytest.mark.skipif(os.geteuid() != 0, reason="Gradescope builds its image as root")
def test_setup_sh_fails_the_build_when_the_sandbox_lacks_the_course_minimum(tmp_path):
    root = autograder_tree(tmp_path)
    env = {"PATH": f"{fake_image(tmp_path)}:/usr/bin:/bin", "AUTOGRADER_ROOT": str(root),
           "GRADER_ALLOW_WEAK_ISOLATION": "1"}                       # ignored by the self-test
    proc = run(["bash", str(root / "source" / "setup.sh")], cwd=tmp_path, env={**env, "GRADER_DISABLE_LAYERS": "seccomp"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "SELF-TEST FAILED" in proc.stderr and "seccomp" in proc.stderr
    proc = run(["bash", str(root / "source" / "setup.sh")], cwd=tmp_path, env=env)
    assert proc.returncode == 0 and "self-test passed" in proc.stdout, proc.stdout + proc.stderr
