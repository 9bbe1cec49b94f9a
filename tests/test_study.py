"""The self-study commands (grader/study/), driven the way a learner drives them.

`watch` and `drill` run in a pseudo-terminal (through `make`, where it matters), in a throwaway
copy of the repository with git: the tests save files, read what the screen shows, press
Ctrl-C, and kill a drill outright, and check that the learner's own file always comes back.
Exercise 05 is the one graded (a grade takes a few seconds); the poll interval is shortened with
STUDY_POLL.
"""
import importlib
import inspect
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grader.study.hints import parse_hints, triggers  # noqa: E402
from ptyterm import CLEAR, Terminal, child_env  # noqa: E402
from grader.blank import blank_stub  # noqa: E402
from grader.exercises import all_exercises  # noqa: E402

pytestmark = pytest.mark.skipif(os.name != "posix", reason="pseudo-terminals and signals are POSIX")

STUB_05 = '''"""Stub written by the tests (exercises/05_softmax.py was not there)."""
import torch


def softmax(x, dim=-1):
    raise NotImplementedError("TODO")
'''
NAIVE_05 = '''import torch


def softmax(x, dim=-1):
    e = torch.exp(x)
    return e / e.sum(dim, keepdim=True)
'''
LEARNER_05 = '''import torch


def softmax(x, dim=-1):
    # my own work in progress: the tests check that this comes back, byte for byte
    raise NotImplementedError("still thinking")
'''
HINT_LEVELS = (1, 2, 3)


def stub_05():
    path = REPO / "exercises" / "05_softmax.py"
    return path.read_text() if path.is_file() else STUB_05


def reference_05():
    path = REPO / "solutions" / "05_softmax.py"
    return path.read_text() if path.is_file() else None


@pytest.fixture
def course(tmp_path):
    """A copy of the repository with exercises 01 and 05, committed to a fresh git repository."""
    root = tmp_path / "course"
    shutil.copytree(REPO / "grader", root / "grader", ignore=shutil.ignore_patterns("__pycache__"))
    for test in (root / "grader" / "tests").glob("test_[0-9][0-9]_*.py"):
        if test.name not in ("test_01_project.py", "test_05_softmax.py"):
            test.unlink()
    (root / "exercises" / "hints").mkdir(parents=True)
    (root / "solutions").mkdir()
    for name in ("01_project", "05_softmax"):
        src = REPO / "exercises" / f"{name}.py"
        (root / "exercises" / f"{name}.py").write_text(src.read_text() if src.is_file() else stub_05())
        hints = REPO / "exercises" / "hints" / f"{name}.md"
        if hints.is_file():
            shutil.copy(hints, root / "exercises" / "hints" / hints.name)
    if reference_05():
        (root / "solutions" / "05_softmax.py").write_text(reference_05())
    for name in ("Makefile", "requirements.txt"):
        shutil.copy(REPO / name, root / name)
    # make's $(PY) is .venv/bin/python: here a wrapper for the interpreter running the tests.
    (root / ".venv" / "bin").mkdir(parents=True)
    wrapper = root / ".venv" / "bin" / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    (root / ".venv" / ".installed").touch()
    (root / ".gitignore").write_text(".venv/\n.grade/\n__pycache__/\n")
    if shutil.which("git"):
        git(root, "init", "-q")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "course")
    else:   # no git: the tool's own cache of the stub stands in
        (root / ".grade" / "pristine").mkdir(parents=True)
        shutil.copy(root / "exercises" / "05_softmax.py", root / ".grade" / "pristine" / "05_softmax.py")
    return root


def git(root, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=root, check=True,
                   capture_output=True)


def study_cmd(root, *args, **env):
    """Runs a study command to completion (no terminal); returns (exit status, output)."""
    proc = subprocess.run([sys.executable, "-m", "grader.study", *args], cwd=root, capture_output=True, text=True,
                          env=child_env(**env), timeout=60)
    return proc.returncode, proc.stdout + proc.stderr


def save(path, text):
    """Saves a file as an editor does; the new mtime is always later than the old one."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    if path.stat().st_mtime_ns <= before:
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


@pytest.fixture
def terminals():
    opened = []

    def open_terminal(argv, cwd, **env):
        t = Terminal(argv, cwd, **env)
        opened.append(t)
        return t
    yield open_terminal
    for t in opened:
        t.close()


def study_argv(*args):
    return [sys.executable, "-m", "grader.study", *args]


def drill_state(root):
    path = root / ".grade" / "drill" / "state.json"
    return json.loads(path.read_text()) if path.exists() else None


def drills(root):
    hist = json.loads((root / ".grade" / "history.json").read_text())
    return hist["05"]["drills"]


needs_reference = pytest.mark.skipif(reference_05() is None, reason="solutions/05_softmax.py is not there yet")


# -- watch -----------------------------------------------------------------------------------
@needs_reference
def test_watch_grades_each_save_and_moves_on_at_full_marks(course, terminals):
    ex05 = course / "exercises" / "05_softmax.py"
    term = terminals(study_argv("watch", "05"), course)
    term.wait_for(r"05 softmax\s+0/10")                  # it grades what is there at once
    term.wait_for(r"Save exercises/05_softmax\.py to grade it")
    assert CLEAR in term.raw_text(), "the screen is cleared before each report"

    mark = term.mark()
    save(ex05, NAIVE_05)
    term.wait_for(r"Save exercises/05_softmax\.py to grade it", since=mark)
    shown = term.screen()
    assert re.search(r"05 softmax\s+\d+(\.\d\d?)?/10", shown) and not re.search(r"05 softmax\s+(0|10)/10", shown)
    assert "This looks like a known mistake" in shown          # the grader's feedback, on the screen

    mark = term.mark()
    save(ex05, reference_05())
    term.wait_for(r"05 softmax: full marks\. Next up: 01 project", since=mark)
    term.wait_for(r"Save exercises/01_project\.py to grade it", since=mark)
    assert re.search(r"\s10/10", term.screen())


    term.press(b"\x03")
    term.wait_for("Stopped watching")
    term.wait_exit()
    assert json.loads((course / ".grade" / "last.json").read_text())["05"]["score"] == 10


# -- drills ----------------------------------------------------------------------------------
def start_drill(terminals, course, via_make=True, **env):
    ex05 = course / "exercises" / "05_softmax.py"
    save(ex05, LEARNER_05)
    argv = ["make", "--no-print-directory", "drill", "EX=05"] if via_make else study_argv("drill", "05")
    term = terminals(argv, course, **env)
    term.wait_for(r"DRILL 05 softmax")
    assert ex05.read_text() == blank_stub(stub_05()), "the drill starts from the blank-file stub"
    assert (course / ".grade" / "drill" / "05_softmax.py").read_text() == LEARNER_05, "the learner's file is aside"
    return term, ex05


@needs_reference
def test_drill_to_full_marks_records_the_time_and_gives_the_file_back(course, terminals):
    term, ex05 = start_drill(terminals, course)
    save(ex05, reference_05())
    term.wait_for(r"Full marks on 05 softmax in \d+:\d\d \(a new best\)")
    assert term.wait_exit() == 0
    assert ex05.read_text() == LEARNER_05
    assert drill_state(course) is None
    record = drills(course)[-1]
    assert record["outcome"] == "full marks" and 0 <= record["seconds"] < 60
    attempts = list((course / ".grade" / "drill" / "attempts").glob("05_softmax.*.py"))
    assert [a.read_text() for a in attempts] == [reference_05()]
    # The drill's grades do not stand for the learner's own file afterwards.
    assert "05" not in json.loads((course / ".grade" / "last.json").read_text())

    code, out = study_cmd(course, "progress")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("  05 softmax"))
    assert re.search(r"\s10\s+0:\d\d\s+0:\d\d", row), row       # best score, best drill, trend
    assert re.search(r"1/2 with full marks", out)


def test_ctrl_c_during_a_grade_gives_the_file_back(course, terminals):
    term, ex05 = start_drill(terminals, course)
    mark = term.mark()
    save(ex05, NAIVE_05)
    term.wait_for(r"DRILL 05 softmax", since=mark)           # the save is being graded now
    time.sleep(0.3)
    term.press(b"\x03")                                       # Ctrl-C, through make
    term.wait_for(r"Your own exercises/05_softmax\.py is back")
    assert term.wait_exit() != 0                              # make reports the interrupt
    assert ex05.read_text() == LEARNER_05
    assert drill_state(course) is None
    assert drills(course)[-1]["outcome"] == "stopped"
    attempts = list((course / ".grade" / "drill" / "attempts").glob("05_softmax.*.py"))
    assert [a.read_text() for a in attempts] == [NAIVE_05]


def test_a_drill_killed_outright_is_undone_by_the_next_command(course, terminals):
    term, ex05 = start_drill(terminals, course, via_make=False)
    save(ex05, NAIVE_05 + "# half done\n")
    time.sleep(0.2)
    os.kill(term.proc.pid, signal.SIGKILL)
    term.wait_exit()
    assert drill_state(course) is not None and ex05.read_text() != LEARNER_05   # nothing could run

    code, out = study_cmd(course, "progress")
    assert code == 0
    assert "Put your own exercises/05_softmax.py back" in out
    assert ex05.read_text() == LEARNER_05
    assert drill_state(course) is None
    assert drills(course)[-1]["outcome"] == "interrupted"
    code, out = study_cmd(course, "progress")                # once only
    assert "Put your own" not in out


def test_time_cap_drill_done_and_one_drill_at_a_time(course, terminals):
    term, ex05 = start_drill(terminals, course, via_make=False, STUDY_DRILL_SECONDS="1.5")
    term.wait_for(r"Time's up: 0:02 on 05 softmax")
    assert term.wait_exit() == 0
    assert ex05.read_text() == LEARNER_05
    assert drills(course)[-1]["outcome"] == "time's up"

    term, ex05 = start_drill(terminals, course, via_make=False)
    code, out = study_cmd(course, "drill", "01")
    assert code == 1 and "a drill on 05 is running already" in out and len(out.strip().splitlines()) == 1
    code, out = study_cmd(course, "reset", "05")
    assert code == 1 and "drill-done" in out
    code, out = study_cmd(course, "drill-done")
    assert code == 0 and "your own exercises/05_softmax.py is back" in out
    term.wait_for(r"Drill on 05 softmax stopped")
    assert term.wait_exit() == 0
    assert ex05.read_text() == LEARNER_05
    code, out = study_cmd(course, "drill-done")
    assert code == 0 and "No drill is running" in out


def test_the_fresh_stub_survives_the_learners_own_commits(course):
    if not shutil.which("git"):
        pytest.skip("git is not installed")
    ex05 = course / "exercises" / "05_softmax.py"
    stub = stub_05()
    save(ex05, NAIVE_05)
    git(course, "commit", "-qam", "my softmax")               # a student commits their work
    save(ex05, NAIVE_05 + "# more\n")
    code, out = study_cmd(course, "reset", "05")
    assert code == 0, out
    assert ex05.read_text() == stub
    backups = list((course / ".grade" / "backups").glob("05_softmax.*.py"))
    assert [b.read_text() for b in backups] == [NAIVE_05 + "# more\n"]
    code, out = study_cmd(course, "reset", "05")
    assert code == 0 and "already" in out


# -- hints, solution, bad input -----------------------------------------------------------
def test_hints_speak_to_the_last_failure_then_step_up(course):
    ex05 = course / "exercises" / "05_softmax.py"
    save(ex05, NAIVE_05)
    subprocess.run([sys.executable, "-m", "grader", "05", "--seed", "3"], cwd=course, env=child_env(),
                   capture_output=True, timeout=120)
    failed = json.loads((course / ".grade" / "last.json").read_text())["05"]
    assert failed["score"] < 10

    levels, whens = parse_hints((REPO / "exercises" / "hints" / "05_softmax.md").read_text())
    code, first = study_cmd(course, "hint", "05")
    assert code == 0
    assert "about your last grade" in first
    assert any(text.splitlines()[0] in first for key, text in whens), "a `when:` section comes first"
    outs = [study_cmd(course, "hint", "05")[1] for _ in range(4)]
    for n, out in zip((1, 2, 3, 3), outs):
        assert f"Hint {n} of 3 for 05 softmax" in out and levels[n].splitlines()[0] in out
    assert "last hint" in outs[-1]
    assert "Hint 1 of 3" in study_cmd(course, "hint", "05", "--level", "1")[1]

    # A new grade with the same failure speaks to it first again.
    failed["time"] += 5
    (course / ".grade" / "last.json").write_text(json.dumps({"05": failed}))
    os.utime(ex05, (failed["time"] - 5, failed["time"] - 5))
    assert "about your last grade" in study_cmd(course, "hint", "05")[1]


def test_solution_only_after_full_marks_or_force(course):
    if reference_05() is None:
        pytest.skip("solutions/05_softmax.py is not there yet")
    code, out = study_cmd(course, "solution", "05")
    assert code == 1 and "FORCE=1" in out and len(out.strip().splitlines()) == 1
    code, out = study_cmd(course, "solution", "05", "--force")
    assert code == 0 and reference_05() in out
    last = {"05": {"id": "05", "name": "softmax", "score": 10.0, "max_score": 10.0, "status": "complete",
                   "tests": [], "time": time.time()}}
    (course / ".grade" / "last.json").write_text(json.dumps(last))
    code, out = study_cmd(course, "solution", "05")
    assert code == 0 and reference_05() in out
    shutil.rmtree(course / "solutions")                        # a student copy has none
    code, out = study_cmd(course, "solution", "05", "--force")
    assert code == 1 and "no solutions/ folder" in out


@pytest.mark.parametrize("target", ["hint", "drill", "reset", "solution"])
def test_bad_input_is_one_clear_line(course, target):
    for args, needle in ((["EX=99"], "unknown exercise '99'"), ([], "which exercise? give EX=NN")):
        proc = subprocess.run(["make", "--no-print-directory", "-s", target, *args], cwd=course, env=child_env(),
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0
        ours = [line for line in proc.stderr.splitlines() if not line.startswith("make")]
        assert len(ours) == 1 and needle in ours[0] and ours[0].startswith(f"{target}: "), proc.stderr


# -- the study material itself --------------------------------------------------------------
CONTRACT_FILES = [ex.stem for ex in all_exercises()]


@pytest.mark.parametrize("name", CONTRACT_FILES)
def test_every_exercise_has_hints_and_a_reading(name):
    levels, whens = parse_hints((REPO / "exercises" / "hints" / f"{name}.md").read_text())
    assert sorted(levels) == list(HINT_LEVELS) and all(levels.values())
    assert whens and all(text for _, text in whens)
    reading = (REPO / "exercises" / f"{name}.md").read_text()
    for section in ("## The idea", "## Shapes", "## Complexity", "## Say it out loud"):
        assert section in reading, f"{name}.md lacks {section}"


@pytest.mark.parametrize("name", CONTRACT_FILES)
def test_hint_triggers_name_real_checks(name):
    """Each `## when:` trigger is a known mistake's key, a test's name or a status the grader reports."""
    test_module = REPO / "grader" / "tests" / f"test_{name}.py"
    if not test_module.is_file():
        pytest.skip(f"{test_module.name} is not written yet")
    module = importlib.import_module(f"grader.tests.test_{name}")
    from grader import attention_errors
    from grader.checks import Mistake
    keys = {m.key for m in vars(module).values() if isinstance(m, Mistake)}
    keys |= {m.key for m in getattr(module, "MISTAKES", [])}
    keys |= set(attention_errors.KEYS)          # computed error shapes carry keys too
    keys |= {"device_ignored"} if getattr(module, "CHECKS_DEVICES", False) else set()
    tests = {n for n, f in inspect.getmembers(module, inspect.isfunction) if n.startswith("test_")}
    _, whens = parse_hints((REPO / "exercises" / "hints" / f"{name}.md").read_text())
    for key, _ in whens:
        for trigger in triggers(key):
            assert trigger in keys | tests | {"forbidden", "broken"}, \
                f"`## when: {key}` in hints/{name}.md: {trigger!r} is no mistake key, test or status of the grader"
