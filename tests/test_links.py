"""No symbolic link is ever followed under a submission, and the audit sees what a student added.

A submission is one folder of regular files (grader/paths.py). Here each layout an attacker would
try is built and graded the three ways a course grades: `python -m grader --path` (as the
Classroom workflow calls it, with --audit), `python -m grader batch` (one student each), and
Gradescope's `python -m grader.collect` followed by the grader. Each link scores 0 with its
reason, from a scratch copy of the repository, as root here and as an ordinary user in
tests/test_links_as_user.py (a `useradd` user through `setpriv`, as tests/test_cheats.py does):
- exercises -> ../course/solutions (the course's checkout beside the student's, in Classroom);
- exercises -> /proc/self/cwd/solutions (the grader's own working directory);
- exercises -> ../peer/exercises (another student's folder);
- a student folder that is itself a link, a linked folder above the graded one, a link inside;
- an exercise file that is a link (that exercise alone scores 0).
The audit reports links, compiled files (an unchecked-hash .pyc that Python would run in place of
the source) and additions, allows the `.github/.keep` Classroom's bot commits, and reads a 1 GiB
file as a finding without reading it. The in-process tests prove each piece alone.
"""
import csv
import json
import os
import py_compile
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from helpers import REPO
from test_cheats import STUDENT, _prefix

MODE = "root"
IDS = ("01", "02")
SEED = 5
ENV = {"NO_COLOR": "1", "GRADER_JOBS": "1", "GRADER_TIMEOUT": "5"}
GIB = 1 << 30


def _reference(ex_id):
    (path,) = (REPO / "solutions").glob(f"{ex_id}_*.py")
    return path


def _solved(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for ex_id in IDS:
        shutil.copy(_reference(ex_id), folder)
    return folder


def _repository(dest, root):
    """A student's repository made from the template of the grader at `root`, with IDS solved."""
    from grader.template import write
    write(dest, root=root)
    _solved(dest / "exercises")
    return dest


def _commit(repo):
    """Makes `repo` a git repository of one commit, as `gh classroom clone` gives them."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "s", "GIT_AUTHOR_EMAIL": "s@example.org", "GIT_COMMITTER_NAME": "s",
           "GIT_COMMITTER_EMAIL": "s@example.org", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "work"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    return repo


def _unlink_exercises(repo, target):
    shutil.rmtree(repo / "exercises")
    os.symlink(target, repo / "exercises")


# -- in-process: each piece alone ------------------------------------------------------------------
def test_a_link_in_any_component_of_a_path_or_inside_a_folder_is_refused(tmp_path):
    from grader import paths
    from grader.session import read_source
    real = _solved(tmp_path / "real")
    (tmp_path / "alias").symlink_to("real")
    (tmp_path / "alias_file").symlink_to(real / "01_project.py")
    assert paths.refusal(real, {"01_project.py"}) is None
    assert read_source(real / "01_project.py")[2] is None
    with pytest.raises(paths.Refused, match="alias is a symbolic link"):
        os.close(paths.open_folder(tmp_path / "alias"))
    with pytest.raises(paths.Refused, match="alias is a symbolic link"):
        paths.lstat(tmp_path / "alias" / "01_project.py")
    why = read_source(tmp_path / "alias" / "01_project.py")[2]
    assert "alias is a symbolic link (to real)" in why, why
    assert "symbolic link" in paths.refusal(tmp_path / "alias")
    # inside: a link to a file or folder is refused for the whole folder, but for one at an
    # exercise file's name, which costs that exercise alone
    (real / "02_split_heads.py").unlink()
    (real / "02_split_heads.py").symlink_to(_reference("02"))
    assert paths.refusal(real, {"01_project.py", "02_split_heads.py"}) is None
    assert "02_split_heads.py is a symbolic link" in read_source(real / "02_split_heads.py")[2]
    (real / "deep").mkdir()
    (real / "deep" / "notes").symlink_to("/etc")
    assert "deep/notes in the submission is a symbolic link (to /etc)" in paths.refusal(real, {"02_split_heads.py"})
    (real / "deep" / "notes").unlink()
    (real / ".git").mkdir()                     # a repository's history is not the submission
    (real / ".git" / "HEAD").symlink_to("/etc/passwd")
    assert paths.refusal(real, {"02_split_heads.py"}) is None
    (real / ".git" / "HEAD").unlink()
    (real / "deep" / "notes").symlink_to("/etc")
    # nothing is entered through a link, whatever the path says after it
    assert [e.rel for e in paths.walk(tmp_path, skip={".git"})] == ["alias", "alias_file", "real", "real/01_project.py",
                                                     "real/02_split_heads.py", "real/deep", "real/deep/notes"]
    # a relative path is walked from the working directory, '..' included, and never through a link
    cwd = os.getcwd()
    try:
        os.chdir(real / "deep")
        assert paths.lstat("../01_project.py") is not None
        with pytest.raises(paths.Refused):
            paths.lstat("notes/passwd")
    finally:
        os.chdir(cwd)


def test_only_a_link_root_made_directly_in_the_root_folder_is_followed():
    from grader import paths
    system = [p for p in ("/bin", "/lib", "/tmp", "/var", "/home") if os.path.islink(p) and os.lstat(p).st_uid == 0
              and os.path.isdir(p)]
    if not system:
        pytest.skip("no link directly in / here")
    os.close(paths.open_folder(system[0]))
    nested = next((p for p in ("/proc/self", "/dev/fd", "/dev/stdin") if os.path.islink(p)), None)
    if nested:
        with pytest.raises(paths.Refused):
            os.close(paths.open_folder(nested))


def test_names_and_csv_cells_are_printed_inert():
    from grader.batch import row
    from grader.paths import shown
    assert shown("a\tb\r\n\x1b[31m\u202ez") == "a\\tb\\r\\n\\x1b[31m\\u202ez"
    for name in ("=SUM(A1)", "+1", "-1", "@cmd", "\t=1", "\r=1"):
        cells = row(name, None, "broken", "\t=HYPERLINK()", ["01"], audit="\r@x")
        for key in ("student", "error", "audit"):
            assert cells[key][:1] not in ("=", "+", "-", "@", "\t", "\r"), (name, key, cells[key])
            assert "\t" not in cells["student"] and "\r" not in cells["student"]
    assert row("alice", None, "ok", "", ["01"])["student"] == "alice"


def test_the_audit_sees_links_compiled_files_and_additions_and_allows_classroom_keep(tmp_path):
    from grader.template import audit
    repo = _repository(tmp_path / "student", REPO)
    (repo / "exercises" / "01_project.py").write_text("# the learner's own edit\n")
    (repo / ".github" / ".keep").write_bytes(b"")          # GitHub Classroom's feedback pull request
    assert audit(repo) == []
    # an unchecked-hash .pyc runs in place of its source, whatever the source says
    (repo / "grader" / "__pycache__").mkdir()
    source = tmp_path / "session.py"
    source.write_text("PASS = True\n")
    py_compile.compile(str(source), str(repo / "grader" / "__pycache__" / "session.cpython-311.pyc"),
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    (repo / "exercises" / "conftest.py").write_text("")
    (repo / "exercises" / "peer").symlink_to("../../peer/exercises")
    (repo / "notes").symlink_to("/etc")
    os.mkfifo(repo / "grader" / "pipe")
    findings = audit(repo)
    assert "added: grader/__pycache__/session.cpython-311.pyc" in findings, findings
    assert "added: exercises/conftest.py" in findings
    assert "link: exercises/peer -> ../../peer/exercises" in findings and "link: notes -> /etc" in findings
    assert "not a regular file: grader/pipe" in findings
    assert not [f for f in findings if ".keep" in f or "01_project" in f], findings
    (repo / ".github" / ".keep").write_text("x")             # not what Classroom adds
    assert "added: .github/.keep" in audit(repo)
    # a linked grader/ is a link, never entered: its files are gone, in one finding
    shutil.rmtree(repo / "grader")
    (repo / "grader").symlink_to(REPO / "grader")
    findings = audit(repo)
    assert f"link: grader -> {REPO / 'grader'}" in findings and any(f.startswith("deleted: grader/ (all") for f in findings)


def test_the_audit_reads_a_1_gib_file_without_its_memory(tmp_path):
    """With 600 MiB of address space (Python and the grader's modules take a tenth of it), the
    audit of a repository holding a 1 GiB file ends, and says the file is over what it reads."""
    repo = _repository(tmp_path / "student", REPO)
    with open(repo / "grader" / "huge.bin", "wb") as f:
        f.truncate(GIB)                    # sparse: no disk, but reading it takes 1 GiB
    code = ("import json, sys; from grader.template import audit; print(json.dumps(audit(sys.argv[1])))")
    limit = 600 << 20

    def bound():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    proc = subprocess.run([sys.executable, "-c", code, str(repo)], cwd=REPO, capture_output=True, text=True,
                          preexec_fn=bound, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    findings = json.loads(proc.stdout)
    assert any(f.startswith("oversize: grader/huge.bin (1,073,741,824 bytes") for f in findings), findings


# -- graded: --path, batch, Gradescope -------------------------------------------------------------
def _scratch(work):
    """A copy of the repository's grader, references and template parts: every run's cwd."""
    repo = work / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("grader", "solutions", "exercises", ".github", "template"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, repo / name, ignore=ignore)
    for name in ("Makefile", "requirements.txt", ".gitignore", "README.md"):
        shutil.copy(REPO / name, repo / name)
    return repo


def _layouts(work, repo):
    """The class (batch), the Classroom workspace and the Gradescope uploads."""
    course = work / "course"
    shutil.copytree(repo / "solutions", course / "solutions")
    cls = work / "class"
    _commit(_repository(cls / "peer", repo))                                 # an honest repository, in git
    _solved(cls / "honest")                                                  # loose files
    _unlink_exercises(_repository(cls / "to-solutions", repo), "../../course/solutions")
    _unlink_exercises(_repository(cls / "to-proc", repo), "/proc/self/cwd/solutions")
    _unlink_exercises(_repository(cls / "to-peer", repo), "../peer/exercises")
    (cls / "linked-student").symlink_to("peer")
    (_solved(cls / "linked-git") / ".git").symlink_to("../peer/.git")      # a repository's history, borrowed
    (_solved(cls / "link-inside") / "notes").symlink_to("/etc")
    in_repo = _repository(cls / "link-in-repo", repo)          # a repository holding a link, not in exercises/
    shutil.rmtree(in_repo / "grader" / "tests")
    (in_repo / "grader" / "tests").symlink_to("../../peer/grader/tests")
    (cls / "file-link").mkdir()
    shutil.copy(_reference("01"), cls / "file-link")
    (cls / "file-link" / "02_split_heads.py").symlink_to("../peer/exercises/02_split_heads.py")
    compiled = _repository(cls / "compiled", repo)
    (compiled / "grader" / "__pycache__").mkdir()
    py_compile.compile(str(repo / "grader" / "session.py"),
                       str(compiled / "grader" / "__pycache__" / "session.cpython-311.pyc"),
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    (compiled / ".github" / ".keep").write_bytes(b"")
    with open(compiled / "grader" / "huge.bin", "wb") as f:
        f.truncate(GIB)
    _solved(cls / "\r=HYPERLINK(x)")                                         # a name made to be a formula
    (work / "class-alias").symlink_to("class")
    # Classroom: the student's repository beside the course's checkout; and a linked folder above
    ws = work / "ws"
    shutil.copytree(course, ws / "course")
    _unlink_exercises(_repository(ws / "student", repo), "../course/solutions")
    _repository(ws / "real", repo)
    (ws / "alias").symlink_to("real")
    # Gradescope: one upload with an exercise file that is a link, one whose exercises/ is a link
    gs = work / "gs"
    up = gs / "one" / "attention-main" / "exercises"
    up.mkdir(parents=True)
    shutil.copy(_reference("01"), up)
    (up / "02_split_heads.py").symlink_to(course / "solutions" / _reference("02").name)
    two = gs / "two" / "attention-main"
    two.mkdir(parents=True)
    (two / "exercises").symlink_to(course / "solutions")
    return cls, ws, gs


def _open(work):
    for p in [work, *work.rglob("*")]:
        if not p.is_symlink():
            os.chmod(p, 0o755 if p.is_dir() else 0o644)


@pytest.fixture(scope="module")
def graded(request):
    """Every run at once, by whoever the module's MODE says: {name: (exit code, log)} and the outputs."""
    prefix = _prefix(request.module.MODE)
    work = Path(tempfile.mkdtemp(prefix=f"grader-links-{request.module.MODE}-"))
    try:
        repo = _scratch(work)
        cls, ws, gs = _layouts(work, repo)
        out = work / "out"
        out.mkdir()
        _open(work)
        if prefix and os.geteuid() == 0:
            shutil.chown(out, STUDENT)
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_"))}, **ENV,
               "HOME": str(out), "PY": sys.executable}
        py = [*prefix, sys.executable]
        seed = ["--seed", str(SEED)]
        commands = {
            "batch": [*py, "-m", "grader", "batch", str(cls), *IDS, "--csv", str(out / "grades.csv"), *seed,
                      "--jobs", "2", "--reports", str(out / "reports")],
            "batch-alias": [*py, "-m", "grader", "batch", str(work / "class-alias"), *IDS, "--csv",
                            str(out / "alias.csv")],
            "classroom": [*py, "-m", "grader", "01", "--path", str(ws / "student" / "exercises"), *seed,
                          "--json", str(out / "classroom.json"), "--audit", str(ws / "student")],
            "parent": [*py, "-m", "grader", "01", "--path", str(ws / "alias" / "exercises"), *seed,
                       "--json", str(out / "parent.json")],
            # as gradescope/run_autograder does
            "collect": [*prefix, "sh", "-c", f'"$PY" -m grader.collect {gs}/one {out}/gs-one --results '
                        f'{out}/gs-one.json && "$PY" -m grader {" ".join(IDS)} --path {out}/gs-one --seed {SEED} '
                        f'--gradescope {out}/gs-one.json; "$PY" -m grader.collect {gs}/two {out}/gs-two '
                        f'--results {out}/gs-two.json; echo "collect two: $?"'],
        }
        procs = {name: subprocess.Popen(cmd, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        errors="replace", env=env) for name, cmd in commands.items()}
        runs = {}
        for name, proc in procs.items():
            log, _ = proc.communicate(timeout=600)
            runs[name] = (proc.returncode, log)
        rows = {}
        if (out / "grades.csv").exists():
            with open(out / "grades.csv", newline="") as f:
                rows = {r["student"]: r for r in csv.DictReader(f)}
        yield {"runs": runs, "rows": rows, "out": out, "work": work}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _json(graded, name):
    path = graded["out"] / name
    assert path.exists(), "\n".join(f"{k}: {v[1][-1500:]}" for k, v in graded["runs"].items())
    return json.loads(path.read_text())


REFUSED = {"to-solutions": "(to ../../course/solutions)", "to-proc": "(to /proc/self/cwd/solutions)",
           "to-peer": "(to ../peer/exercises)", "linked-student": "linked-student is a symbolic link (to peer)",
           "link-inside": "notes in the submission is a symbolic link (to /etc)",
           "linked-git": ".git is not a folder (a link",
           "link-in-repo": "grader/tests in the submission is a symbolic link (to ../../peer/grader/tests)"}


@pytest.mark.parametrize("student", sorted(REFUSED))
def test_batch_a_link_in_the_path_or_inside_scores_zero_with_its_reason(graded, student):
    row = graded["rows"].get(student)
    assert row is not None, graded["runs"]["batch"][1][-3000:]
    assert float(row["total"]) == 0 and float(row["01"]) == float(row["02"]) == 0, row
    assert row["status"] == "broken" and REFUSED[student] in row["error"], row
    assert "follow" in row["error"]        # "follows no link", "not followed"
    page = (graded["out"] / "reports" / f"{student}.txt").read_text()
    assert REFUSED[student] in page


def test_batch_grades_the_honest_beside_them_and_audits_in_the_worker(graded):
    rows = graded["rows"]
    log = graded["runs"]["batch"][1]
    assert graded["runs"]["batch"][0] == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    for name in ("peer", "honest", "compiled", "\\r=HYPERLINK(x)"):
        assert float(rows[name]["total"]) == 20.0 and rows[name]["status"] == "ok", rows[name]
    assert rows["peer"]["audit"] == "clean" and rows["honest"]["audit"] == ""
    # an exercise file that is a link costs that exercise alone
    assert (float(rows["file-link"]["01"]), float(rows["file-link"]["02"])) == (10.0, 0.0), rows["file-link"]
    assert "02_split_heads.py is a symbolic link" in rows["file-link"]["error"]
    audits = {name: rows[name]["audit"] for name in REFUSED}
    assert "link: exercises -> ../../course/solutions" in audits["to-solutions"], audits
    assert "link: exercises -> /proc/self/cwd/solutions" in audits["to-proc"], audits
    assert "link: exercises -> ../peer/exercises" in audits["to-peer"], audits
    assert audits["linked-student"].startswith("not audited: ") and "symbolic link" in audits["linked-student"]
    assert "link: grader/tests -> ../../peer/grader/tests" in audits["link-in-repo"], audits
    compiled = rows["compiled"]["audit"]
    assert "added: grader/__pycache__/session.cpython-311.pyc" in compiled, compiled
    assert "oversize: grader/huge.bin (1,073,741,824 bytes" in compiled and ".keep" not in compiled, compiled
    # a name made to be a formula or to rewrite the line: inert in the CSV, the log and the file names
    assert "\r" not in log and "\\r=HYPERLINK(x)" in log
    page = (graded["out"] / "reports" / "\\r=HYPERLINK(x).txt").read_bytes().decode()
    assert "\r" not in page and "Total 20" in page, page[:300]


def test_batch_refuses_a_class_folder_given_through_a_link(graded):
    code, log = graded["runs"]["batch-alias"]
    assert code == 2 and "class-alias is a symbolic link (to class)" in log, log
    assert not (graded["out"] / "alias.csv").exists()


def test_classroom_exercises_linked_to_the_course_solutions_scores_zero_and_the_audit_says_so(graded):
    report = _json(graded, "classroom.json")
    (ex,) = report["exercises"]
    assert report["score"] == 0 and ex["status"] == "broken", ex
    assert "exercises in the submission is a symbolic link (to ../course/solutions)" in ex["error"], ex["error"]
    assert "link: exercises -> ../course/solutions" in report["audit"], report["audit"]
    code, log = graded["runs"]["classroom"]
    assert "not graded: " in log and "Traceback" not in log, log[-3000:]


def test_path_through_a_linked_folder_above_scores_zero(graded):
    report = _json(graded, "parent.json")
    (ex,) = report["exercises"]
    assert report["score"] == 0 and "alias is a symbolic link (to real)" in ex["error"], ex


def test_gradescope_collect_keeps_a_linked_file_ungraded_and_refuses_a_linked_folder(graded):
    code, log = graded["runs"]["collect"]
    one = _json(graded, "gs-one.json")
    assert one["score"] == 10.0, one.get("output", "")[-2000:]
    assert "02_split_heads.py is a symbolic link" in json.dumps(one), json.dumps(one)[-2000:]
    assert os.path.islink(graded["out"] / "gs-one" / "02_split_heads.py")
    two = _json(graded, "gs-two.json")
    assert "collect two: 3" in log, log[-2000:]
    assert two["score"] == 0 and two["tests"] == [], two
    assert "attention-main/exercises is a symbolic link" in two["output"], two["output"]


# -- the Classroom workflow, emulated (tests/workflow_emulator.py) ---------------------------------
def test_classroom_workflow_records_zero_for_exercises_linked_to_the_course_and_allows_its_own_keep(tmp_path):
    """The attack that recorded 150/150: exercises -> ../course/solutions, beside the course's
    checkout. The run records 0 with the reason, and the audit names the link; the .github/.keep
    Classroom's bot commits is not a finding."""
    from test_classroom import MAX, commit, emulate, needs_node, student_repo
    if needs_node.args[0]:
        pytest.skip(needs_node.kwargs["reason"])
    student = student_repo(tmp_path, {})
    _unlink_exercises(student, "../course/solutions")
    (student / ".github" / ".keep").write_bytes(b"")
    commit(student, "exercises are the course's")           # the workflow checks out what was pushed
    job, outcomes, text = emulate(tmp_path, student)
    assert outcomes["Grade every exercise"] == "success", job.log
    assert f"::notice title=Autograding complete::Points 0/{MAX}" in text, text[-3000:]
    assert "exercises in the submission is a symbolic link (to ../course/solutions)" in text, text[-3000:]
    assert "link: exercises -> ../course/solutions" in text, text[-3000:]
    assert ".keep" not in text, text[-3000:]
