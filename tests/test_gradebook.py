"""The gradebook a course runs on: `python -m grader batch` with a roster, a deadline, the summary,
the similarity report and hand-back pages, on a class of real git repositories made here.

The class (exercises 01 and 02, graded in one batch): ten students on the roster, eight with a
repository as `gh classroom clone` names them (attention-NAME):
  ann  the references, on time                  ben  01 on time, 02 only in a commit after the deadline
  cat  a repository without a commit            dan  the stubs, committed on time
  eve  fay's code, renamed and laid out again   fay  her own code
  gus  no exercises/ on time; everything late   hal  code that returns None
  kim, lee: on the roster, no repository.
"""
import csv
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from helpers import REPO

ENV = {**os.environ, "NO_COLOR": "1", "GRADER_ALLOW_WEAK_ISOLATION": "1", "GIT_CONFIG_GLOBAL": os.devnull,
       "GIT_CONFIG_NOSYSTEM": "1"}
DEADLINE = "2026-11-30T23:59:00+01:00"
BEFORE, AFTER = "2026-11-30T20:00:00+01:00", "2026-12-01T09:30:00+01:00"
ROSTER = ["ann", "ben", "cat", "dan", "eve", "fay", "gus", "hal", "kim", "lee"]
EX01, EX02 = "exercises/01_project.py", "exercises/02_split_heads.py"

FAY = {EX01: '''import torch


def linear(x, weight, bias=None):
    y = torch.matmul(x, weight.transpose(0, 1))
    return y if bias is None else y + bias


def project_qkv(x, w_q, w_k, w_v, b_q=None, b_k=None, b_v=None, context=None):
    kv_in = context if context is not None else x
    return linear(x, w_q, b_q), linear(kv_in, w_k, b_k), linear(kv_in, w_v, b_v)
''', EX02: '''def split_heads(x, num_heads):
    b, n, d = x.shape
    if num_heads < 1 or d % num_heads:
        raise ValueError("D must be a multiple of H")
    return x.reshape(b, n, num_heads, d // num_heads).permute(0, 2, 1, 3)
'''}
EVE = {EX01: '''"""My projections."""
import torch

def linear(inp, W, b=None):
    # multiply by the transpose
    res = torch.matmul(inp,
                       W.transpose(0, 1))
    return res if b is None else res + b

def project_qkv(x, w_q, w_k, w_v, b_q=None, b_k=None, b_v=None, context=None):
    src = context if context is not None else x   # cross-attention reads the context
    return linear(x, w_q, b_q), linear(src, w_k, b_k), linear(src, w_v, b_v)
''', EX02: '''def split_heads(t, h):
    """Heads first."""
    B, T, C = t.shape
    if h < 1 or C % h:
        raise ValueError('heads must divide the width')
    return t.reshape(B, T, h, C // h).permute(0, 2, 1, 3)   # (B, H, T, C // H)
'''}
HAL = {EX01: "def linear(x, weight, bias=None):\n    return None\n\n\n"
             "def project_qkv(x, w_q, w_k, w_v, b_q=None, b_k=None, b_v=None, context=None):\n    return None\n",
       EX02: "def split_heads(x, num_heads):\n    return None\n"}


def source(folder, path):
    return (REPO / folder / Path(path).name).read_text()


def git(repo, *args, when=BEFORE):
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=Student", "-c", "user.email=s@example.org",
                           *args], check=True, capture_output=True, text=True,
                          env={**ENV, "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}).stdout.strip()


def commit(repo, files, when, message="work"):
    """Writes files ({path: text, or None to delete}) and commits them all at `when`; its SHA."""
    for rel, text in files.items():
        path = repo / rel
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    git(repo, "add", "-A", when=when)
    git(repo, "commit", "-q", "--allow-empty", "-m", message, when=when)
    return git(repo, "rev-parse", "HEAD", when=when)


def make_class(root):
    """The class's folder and roster; {student: the commit that must be graded}."""
    refs = {p: source("solutions", p) for p in (EX01, EX02)}
    stubs = {p: source("exercises", p) for p in (EX01, EX02)}
    shas = {}
    for name in ROSTER[:8]:
        repo = root / "class" / f"attention-{name}"
        repo.mkdir(parents=True)
        git(repo, "init", "-q", "-b", "main")
    repo = lambda name: root / "class" / f"attention-{name}"          # noqa: E731
    shas["ann"] = commit(repo("ann"), refs, BEFORE)
    shas["ben"] = commit(repo("ben"), {EX01: refs[EX01], EX02: stubs[EX02]}, BEFORE)
    commit(repo("ben"), {EX02: refs[EX02]}, AFTER, "late")
    shas["dan"] = commit(repo("dan"), stubs, BEFORE, "template")
    shas["eve"] = commit(repo("eve"), EVE, BEFORE)
    shas["fay"] = commit(repo("fay"), FAY, BEFORE)
    shas["gus"] = commit(repo("gus"), {"README.md": "attention\n"}, BEFORE)
    commit(repo("gus"), refs, AFTER, "late")
    shas["hal"] = commit(repo("hal"), HAL, BEFORE)
    # the working tree is never graded: hal's holds the reference 02, uncommitted
    (repo("hal") / EX02).write_text(refs[EX02])
    roster = root / "classroom_roster.csv"
    roster.write_text("identifier,github_username,github_id,name\n" + "".join(
        f"{n}@uni.example,{n},{1000 + i},{n.title()} Student\n" for i, n in enumerate(ROSTER[:9]))
        + "lee@uni.example,,,Lee Student\n")                   # lee never linked a GitHub account
    return root / "class", roster, shas


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    folder, roster, shas = make_class(root)
    out = root / "out"
    out.mkdir()
    proc = subprocess.run([sys.executable, "-m", "grader", "batch", str(folder), "01", "02", "--csv",
                           str(out / "grades.csv"), "--seed", "7", "--jobs", "2", "--roster", str(roster),
                           "--deadline", DEADLINE, "--reports", str(out / "feedback"),
                           "--similarity", str(out / "similar.csv")],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}
    return {"proc": proc, "rows": rows, "out": out, "shas": shas, "root": root,
            "header": next(csv.reader((out / "grades.csv").open())),
            "summary": list(csv.DictReader((out / "grades-summary.csv").open())),
            "pairs": list(csv.DictReader((out / "similar.csv").open()))}


def test_every_student_of_the_roster_has_a_row_with_commit_time_and_seed(graded):
    rows = graded["rows"]
    assert graded["header"] == ["student", "01", "02", "total", "status", "error", "audit", "commit",
                                "commit_time", "seed"]
    assert sorted(rows) == sorted(ROSTER[:9] + ["lee@uni.example"])     # lee: named by the identifier
    for name in ("kim", "lee@uni.example"):
        assert (rows[name]["status"], rows[name]["total"], rows[name]["01"], rows[name]["commit"]) == \
            ("missing", "0.0", "0.0", ""), rows[name]
    assert {r["seed"] for r in rows.values()} == {"7"}
    for name, sha in graded["shas"].items():
        assert rows[name]["commit"] == sha, name
        assert rows[name]["commit_time"] == "2026-11-30T19:00:00Z", name
    assert rows["ann"]["status"] == "ok" and float(rows["ann"]["total"]) == 20


def test_the_deadline_grades_the_last_commit_before_it_never_the_working_tree(graded):
    rows = graded["rows"]
    ben = rows["ben"]
    assert (float(ben["01"]), float(ben["02"]), ben["status"]) == (10, 0, "ok"), ben
    assert "1 commit after the deadline not graded (the last: 2026-12-01T08:30:00Z)" in ben["error"]
    assert rows["gus"]["status"] == "not attempted" and float(rows["gus"]["total"]) == 0
    assert "after the deadline not graded" in rows["gus"]["error"]
    hal = rows["hal"]             # its working tree holds the reference 02, uncommitted
    assert (float(hal["total"]), hal["status"]) == (0, "ok"), hal      # an attempted 0
    assert rows["cat"]["status"] == "not submitted" and "no commit" in rows["cat"]["error"]
    assert float(rows["cat"]["total"]) == 0


def test_not_attempted_is_told_apart_from_an_attempted_zero(graded):
    rows = graded["rows"]
    assert rows["dan"]["status"] == "not attempted" and rows["dan"]["error"] == \
        "nothing written: 01 the stub, 02 the stub"
    assert rows["gus"]["error"].endswith("no exercise file")
    assert rows["hal"]["status"] == "ok" and "nothing written" not in rows["hal"]["error"]


def test_the_summary_gives_each_exercise_and_the_class_from_the_gradebook(graded):
    rows, summary = graded["rows"], {line["item"]: line for line in graded["summary"]}
    assert list(summary) == ["01", "02", "total"]
    counted = [r for r in rows.values() if r["status"] not in ("missing", "not submitted")]
    assert len(counted) == 7
    for item, top in (("01", 10), ("02", 10), ("total", 20)):
        scores = [float(r[item]) for r in counted]
        line = summary[item]
        assert int(line["n"]) == len(scores) and float(line["max_score"]) == top
        assert float(line["mean"]) == round(statistics.mean(scores), 2)
        assert float(line["median"]) == statistics.median(scores)
        assert (float(line["min"]), float(line["max"])) == (min(scores), max(scores))
        buckets = [int(line[b]) for b in ("0", "<25%", "25-<50%", "50-<75%", "75-<100%", "100%")]
        assert sum(buckets) == len(scores)
        assert buckets[0] == sum(s == 0 for s in scores) and buckets[-1] == sum(s == top for s in scores)
    printed = graded["proc"].stdout
    assert "10 students: 2 missing, 1 not submitted, 2 not attempted, 5 ok" in printed, printed
    assert re.search(rf"^total\s+7\s+{re.escape(summary['total']['mean'])}\s", printed, re.M), printed


def test_the_similarity_report_flags_renamed_copies_and_not_the_stubs(graded):
    pairs = {(p["exercise"], p["student_a"], p["student_b"]): p for p in graded["pairs"]}
    assert ("01", "eve", "fay") in pairs and ("02", "eve", "fay") in pairs, pairs
    assert float(pairs[("01", "eve", "fay")]["similarity"]) >= 0.8
    assert float(pairs[("01", "eve", "fay")]["a_like_reference"]) < 0.5      # not the reference's code
    assert ("01", "ann", "ben") in pairs and float(pairs[("01", "ann", "ben")]["a_like_reference"]) == 1
    for key in pairs:                     # stubs, no file, and code too short to say anything: never
        assert not {"dan", "gus", "hal", "cat"} & set(key[1:]), key
    assert ("01", "ann", "fay") not in pairs and ("02", "ann", "fay") not in pairs
    assert f"{len(pairs)} pairs of near-identical submissions" in graded["proc"].stdout


def test_hand_back_pages_hold_no_instructor_path_nor_a_replay_of_hidden_tests(graded):
    feedback = graded["out"] / "feedback"
    assert sorted(p.name for p in feedback.iterdir() if p.suffix == ".txt") == sorted(f"{n}.txt" for n in ROSTER[:9] + ["lee@uni.example"])
    for page in feedback.iterdir():
        text = page.read_text()
        assert str(graded["root"]) not in text and "/tmp" not in text, (page.name, text)
        assert "--seed" not in text and "SEED=" not in text and "shows all" not in text, (page.name, text)
    ben = (feedback / "ben.txt").read_text()
    assert ben.startswith("Grading exercises/  (seed 7)")
    assert f"commit {graded['shas']['ben'][:12]} of 2026-11-30T19:00:00Z" in ben
    assert "Total 10 / 20" in ben
    assert (feedback / "kim.txt").read_text().startswith("Not graded: missing.")


# -- in-process ---------------------------------------------------------------------------------
def test_roster_formats_and_bad_input(tmp_path):
    from grader.gradebook import CourseError, match_roster, parse_deadline, read_roster
    plain = tmp_path / "roster.txt"
    plain.write_text("# week 1\nann\n\nBen\nann\n")
    assert read_roster(plain) == ["ann", "Ben"]
    bad = tmp_path / "bad.csv"
    bad.write_text("email,name\nann@x,Ann\n")
    with pytest.raises(CourseError, match="without a github_username or identifier column"):
        read_roster(bad)
    with pytest.raises(CourseError, match="no time zone"):
        parse_deadline("2026-12-01T23:59")
    with pytest.raises(CourseError, match="not an ISO 8601"):
        parse_deadline("friday")
    folders = [tmp_path / n for n in ("hw1-ann", "hw1-ben", "hw1-xben", "ben", "stray")]
    subs = {s.student: (s.folder.name if s.folder else None, s.note)
            for s in match_roster(folders, ["ann", "ben", "xben", "cy"])}
    assert subs == {"ann": ("hw1-ann", ""), "ben": ("ben", ""), "xben": ("hw1-xben", ""), "cy": (None, ""),
                    "hw1-ben": ("hw1-ben", "not on the roster"), "stray": ("stray", "not on the roster")}


def test_bad_batch_input_is_a_clear_error_before_any_grading(tmp_path):
    (tmp_path / "class" / "ann").mkdir(parents=True)
    roster = tmp_path / "roster.csv"
    roster.write_text("email,name\nann@x,Ann\n")
    for extra, said in ((["--deadline", "2026-12-01 23:59"], "has no time zone"),
                        (["--roster", str(roster)], "without a github_username or identifier column"),
                        (["--similarity", str(tmp_path / "no" / "pairs.csv")], "cannot write"),
                        (["--roster", str(tmp_path / "none.txt")], "cannot read the roster")):
        proc = subprocess.run([sys.executable, "-m", "grader", "batch", str(tmp_path / "class"), "02", "--csv",
                               str(tmp_path / "g.csv"), *extra], cwd=REPO, env=ENV, capture_output=True, text=True)
        assert proc.returncode == 2 and said in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert not (tmp_path / "g.csv").exists()


def test_a_repository_is_read_without_running_anything_its_git_configuration_names(tmp_path):
    """A hostile .git/config: git itself runs the program it names when showing a signed commit's
    log, or checking out; the batch reads the history and exports the commit all the same, running
    nothing of it."""
    from grader.gradebook import Submission, parse_deadline, prepare
    ran, evil, signer = tmp_path / "ran", tmp_path / "evil.sh", tmp_path / "sign.sh"
    evil.write_text(f"#!/bin/sh\ntouch {ran}\n")
    signer.write_text("#!/bin/sh\ncat > /dev/null\necho >&2; echo '[GNUPG:] SIG_CREATED D 1 8 00 0 X' >&2\n"
                      "printf -- '-----BEGIN PGP SIGNATURE-----\\n\\nx\\n-----END PGP SIGNATURE-----\\n'\n")
    evil.chmod(0o755)
    signer.chmod(0o755)
    repo = tmp_path / "attention-mal"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "exercises").mkdir()
    (repo / EX02).write_text("def split_heads(x, num_heads):\n    return x\n")
    (repo / "exercises" / "01_project.py").symlink_to("/etc/passwd")      # links stay links
    (repo / "notes").symlink_to("/etc")
    git(repo, "add", "-A")
    git(repo, "-c", f"gpg.program={signer}", "commit", "-q", "-S", "-m", "signed")
    sha = git(repo, "rev-parse", "HEAD")
    with open(repo / ".git" / "config", "a") as f:
        f.write(f"[log]\n\tshowSignature = true\n[gpg]\n\tprogram = {evil}\n[core]\n\tfsmonitor = {evil}\n")
    git(repo, "log", "-1")
    assert ran.exists(), "the hostile configuration should run its program under a plain git log"
    ran.unlink()
    work = tmp_path / "work"
    work.mkdir()
    sub = prepare(Submission("mal", repo), parse_deadline(DEADLINE), work)
    assert (sub.status, sub.commit) == ("", sha), sub
    assert (sub.graded / EX02).read_text().endswith("return x\n")
    assert os.readlink(sub.graded / EX01) == "/etc/passwd" and os.readlink(sub.graded / "notes") == "/etc"
    assert not ran.exists(), "the batch ran a program the repository's configuration named"


def test_similarity_ignores_names_comments_docstrings_and_layout():
    from grader.similarity import fingerprints, jaccard, tokens, windows
    a = 'def f(x, y):\n    """Doc."""\n    z = x @ y.T  # product\n    return z.sum(-1) + 1\n'
    b = "def g(p,q):\n    w = p @ q.T\n\n    return w.sum(-1)+1\n"
    assert tokens(a) == tokens(b)
    assert tokens("x = y.mean()") != tokens("x = y.sum()")             # the library call still counts
    stub = source("exercises", EX02)
    assert fingerprints(stub, windows(stub)) == set()                   # the stub matches nobody
    fay, eve = (fingerprints(s[EX02], windows(stub)) for s in (FAY, EVE))
    ref = fingerprints(source("solutions", EX02), windows(stub))
    assert jaccard(fay, eve) == 1 and jaccard(fay, ref) < 0.5
    head, first, second = FAY[EX01].split("\n\n\ndef ")                  # the two functions, swapped
    swapped = f"{head}\n\n\ndef {second}\n\n\ndef {first}"
    given = windows(source("exercises", EX01))
    assert jaccard(fingerprints(FAY[EX01], given), fingerprints(swapped, given)) == 1


def test_without_a_deadline_head_is_graded_whatever_its_date(tmp_path):
    from grader.gradebook import Submission, prepare
    repo = tmp_path / "attention-ann"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {EX02: "first\n"}, AFTER)
    head = commit(repo, {EX02: "second\n"}, BEFORE)          # dated before its parent
    (repo / EX02).write_text("not committed\n")
    sub = prepare(Submission("ann", repo), None, tmp_path / "work")
    assert (sub.commit, sub.note, (sub.graded / EX02).read_text()) == (head, "", "second\n")


def test_an_ordinary_user_reads_the_history_of_a_repository_someone_else_owns():
    """git refuses an ordinary user a repository another user owns ("dubious ownership"), as when an
    assistant grades the clones the instructor made: the batch reads each one's history all the same."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to own the repository the ordinary user reads")
    from test_cheats import _student_prefix
    prefix, why = _student_prefix()
    if prefix is None:
        pytest.skip(f"cannot run as an ordinary user here: {why}")
    work = Path(tempfile.mkdtemp(prefix="grader-gradebook-user-"))
    try:
        os.chmod(work, 0o755)
        repo = work / "attention-ann"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        sha = commit(repo, {EX02: source("solutions", EX02)}, BEFORE)
        commit(repo, {EX02: "late\n"}, AFTER)
        for p in [work, *work.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        plain = subprocess.run([*prefix, "git", "-C", str(repo), "log", "-1"], capture_output=True, text=True,
                               env={**ENV, "HOME": str(work)})
        assert plain.returncode != 0 and "dubious ownership" in plain.stderr, plain
        script = ("import sys, tempfile\nfrom pathlib import Path\n"
                  "from grader.gradebook import Submission, parse_deadline, prepare\n"
                  "sub = prepare(Submission('ann', Path(sys.argv[1])), parse_deadline(sys.argv[2]), "
                  "Path(tempfile.mkdtemp()))\n"
                  "print(sub.commit, repr(sub.status), (sub.graded / 'exercises' / '02_split_heads.py').read_text() "
                  "== Path(sys.argv[3]).read_text())\n")
        proc = subprocess.run([*prefix, sys.executable, "-c", script, str(repo), DEADLINE,
                               str(REPO / "solutions" / "02_split_heads.py")], cwd=REPO, capture_output=True,
                              text=True, env={**ENV, "HOME": "/tmp"}, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == [sha, "''", "True"], proc.stdout
    finally:
        shutil.rmtree(work, ignore_errors=True)
