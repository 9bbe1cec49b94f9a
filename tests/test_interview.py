"""make interview (grader/interview.py), driven in a pseudo-terminal: blank stubs, grading on every
save, the follow-up, the talking points, the scorecard and its history; the learner's own files
come back on full marks, time's up, Ctrl-C and after a SIGKILL."""
import json
import os
import random
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

from grader import quiz  # noqa: E402
from grader.blank import blank_stub  # noqa: E402
from ptyterm import Terminal, child_env  # noqa: E402

pytestmark = pytest.mark.skipif(os.name != "posix" or not shutil.which("git") or not shutil.which("make"),
                                reason="needs a pseudo-terminal, git and make")
NAMES = ("10_multi_head_attention", "13_kv_cache")
LEARNER = {name: f"# my own {name}, work in progress: it must come back byte for byte\n" for name in NAMES}


def git(root, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=root, check=True,
                   capture_output=True)


@pytest.fixture
def course(tmp_path):
    root = tmp_path / "course"
    shutil.copytree(REPO / "grader", root / "grader", ignore=shutil.ignore_patterns("__pycache__"))
    for test in (root / "grader" / "tests").glob("test_[0-9][0-9]_*.py"):
        if test.stem[5:] not in NAMES:
            test.unlink()
    (root / "exercises").mkdir()
    (root / "solutions").mkdir()
    for name in NAMES:
        shutil.copy(REPO / "exercises" / f"{name}.py", root / "exercises" / f"{name}.py")
    for name in ("Makefile", "requirements.txt"):
        shutil.copy(REPO / name, root / name)
    (root / ".venv" / "bin").mkdir(parents=True)
    wrapper = root / ".venv" / "bin" / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    (root / ".venv" / ".installed").touch()
    (root / ".gitignore").write_text(".venv/\n.grade/\n__pycache__/\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "course")
    for name in NAMES:
        (root / "exercises" / f"{name}.py").write_text(LEARNER[name])
    return root


def save(path, text):
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    if path.stat().st_mtime_ns <= before:
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


def blank(name):
    return blank_stub((REPO / "exercises" / f"{name}.py").read_text())


def reference(name):
    return (REPO / "solutions" / f"{name}.py").read_text()


def reply_for(q, right):
    if q.kind == "choice":
        return "abcd"[q.answer if right else (q.answer + 1) % 4]
    return repr(q.answer if right else q.answer * 3 + 7)


def interviews(root):
    return json.loads((root / ".grade" / "interview" / "history.json").read_text())


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


def test_interview_to_full_marks_then_the_follow_up_quiz_and_scorecard(course, terminals):
    ex10, ex13 = (course / "exercises" / f"{n}.py" for n in NAMES)
    t = terminals(["make", "--no-print-directory", "interview", "FOLLOW_UP=13", "SEED=3"], course,
                  INTERVIEW_QUIZ_COUNT="2")
    t.wait_for(r"INTERVIEW Part one: 10 multi_head_attention")
    assert ex10.read_text() == blank(NAMES[0]), "part one starts from the blank stub"
    assert (course / ".grade" / "drill" / f"{NAMES[0]}.py").read_text() == LEARNER[NAMES[0]]
    save(ex10, reference(NAMES[0]))
    t.wait_for(r"INTERVIEW Part two \(follow-up\): 13 kv_cache", timeout=90)
    assert ex10.read_text() == LEARNER[NAMES[0]], "part one's file is back as soon as it is done"
    assert ex13.read_text() == blank(NAMES[1])
    save(ex13, reference(NAMES[1]))
    t.wait_for(r"Talking points: 2 questions", timeout=90)
    assert ex13.read_text() == LEARNER[NAMES[1]]
    questions = quiz.draw(random.Random(3), 2)
    t.wait_for(r"\[1/2\]")
    t.type(reply_for(questions[0], True))
    t.wait_for(r"\[2/2\]")
    t.type(reply_for(questions[1], False))
    t.wait_for(r"SCORECARD")
    t.wait_for(r"\(Kept in \.grade/interview/scorecard\.txt")
    assert t.wait_exit() == 0
    screen = t.text()
    assert re.search(r"Part one +10 multi_head_attention from a blank file: full marks in 0:\d\d", screen)
    assert "under 12 minutes: faster than the fluent band" in screen
    assert re.search(r"Part two +13 kv_cache \(the KV cache\): full marks in 0:\d\d", screen)
    assert "Quiz       1/2 talking points right" in screen
    assert re.search(r"Narration  10: \d+ of \d+ tensor lines annotated, \d+ right", screen), screen[-2000:]
    assert ex10.read_text() == LEARNER[NAMES[0]] and ex13.read_text() == LEARNER[NAMES[1]]
    card = interviews(course)[-1]
    assert card["outcome"] == "finished" and [p["outcome"] for p in card["parts"]] == ["full marks"] * 2
    assert card["quiz"]["asked"] == 2 and card["quiz"]["right"] == 1
    assert (course / ".grade" / "interview" / "scorecard.txt").read_text().startswith("SCORECARD")
    hist = json.loads((course / ".grade" / "history.json").read_text())
    for ex_id in ("10", "13"):
        d = hist[ex_id]["drills"][-1]
        assert d["stub"] == "blank" and d["source"] == "interview" and d["seconds"] is not None
    assert json.loads((course / ".grade" / "quiz.json").read_text())["sessions"][-1]["source"] == "interview"
    out = subprocess.run([sys.executable, "-m", "grader.study", "progress"], cwd=course, capture_output=True,
                         text=True, env=child_env(), timeout=60).stdout
    row = next(line for line in out.splitlines() if line.startswith("  10 multi_head_attention"))
    assert re.search(r"1/5\s+0:\d\d", row), row
    assert "Interviews: 1, part one at full marks in 1" in out


def test_the_cap_ctrl_c_and_a_kill_all_give_the_files_back(course, terminals):
    ex10 = course / "exercises" / f"{NAMES[0]}.py"
    # The hard cap: time's up, the file comes back, the quiz still follows, the scorecard says so.
    t = terminals(["make", "--no-print-directory", "interview", "FOLLOW_UP=13"], course,
                  STUDY_INTERVIEW_SECONDS="1.5", INTERVIEW_QUIZ_COUNT="1")
    t.wait_for(r"INTERVIEW Part one")
    t.wait_for(r"\[1/1\]", timeout=30)
    assert ex10.read_text() == LEARNER[NAMES[0]]
    t.type("q")
    t.wait_for(r"SCORECARD")
    assert t.wait_exit() == 0
    assert "not finished within the cap: keep drilling" in t.text()
    assert "Part two   13 (the KV cache): not reached" in t.text()
    assert interviews(course)[-1]["parts"][0]["outcome"] == "time's up"

    # Ctrl-C: stopped, the file back, no quiz, a scorecard all the same.
    t = terminals(["make", "--no-print-directory", "interview", "FOLLOW_UP=13"], course)
    t.wait_for(r"INTERVIEW Part one")
    save(ex10, "# half a module\n")
    time.sleep(0.3)
    t.press(b"\x03")
    t.wait_for(r"SCORECARD .*\(stopped\)")
    t.wait_exit()
    assert ex10.read_text() == LEARNER[NAMES[0]]
    assert "Talking points" not in t.text()
    assert interviews(course)[-1]["outcome"] == "stopped"
    attempts = list((course / ".grade" / "drill" / "attempts").glob(f"{NAMES[0]}.*.py"))
    assert "# half a module\n" in [a.read_text() for a in attempts]

    # SIGKILL: nothing can run; the next command puts the file back, the next interview records it.
    t = terminals([sys.executable, "-m", "grader.interview", "--follow-up", "13"], course)
    t.wait_for(r"INTERVIEW Part one")
    os.kill(t.proc.pid, signal.SIGKILL)
    t.wait_exit()
    assert ex10.read_text() != LEARNER[NAMES[0]]
    out = subprocess.run([sys.executable, "-m", "grader.study", "progress"], cwd=course, capture_output=True,
                         text=True, env=child_env(), timeout=60).stdout
    assert f"Put your own exercises/{NAMES[0]}.py back" in out
    assert ex10.read_text() == LEARNER[NAMES[0]]
    t = terminals([sys.executable, "-m", "grader.interview", "--follow-up", "13"], course,
                  STUDY_INTERVIEW_SECONDS="1", INTERVIEW_QUIZ_COUNT="0")
    t.wait_for(r"was cut short: recorded as interrupted")
    t.wait_for(r"SCORECARD")
    assert t.wait_exit() == 0
    assert [c["outcome"] for c in interviews(course)] == ["finished", "stopped", "interrupted", "finished"]
    assert ex10.read_text() == LEARNER[NAMES[0]]


# -- the scorecard's pieces ------------------------------------------------------------------
def test_bands():
    from grader.interview import band
    assert band(None).startswith("not finished")
    assert band(11 * 60).startswith("under 12 minutes")
    assert band(12 * 60) == band(18 * 60) == "within the fluent band (12-18 minutes)"
    assert band(20 * 60).startswith("past the fluent band")
    assert band(26 * 60) == "past 25 minutes: keep drilling"


def test_named_mistakes_come_from_the_key_never_from_prose():
    from grader.interview import named_mistakes
    entry = {"tests": [
        {"passed": False, "mistake": "no_scale", "message": "..."},
        {"passed": False, "mistake": None, "message": "differs.\n  This looks like a known mistake: softmax over "
                                                      "the query axis.\n  Step 5. Softmax runs over the keys"},
        {"passed": True, "mistake": "ignored", "message": ""},
        {"passed": False, "mistake": "no_scale"}, {"passed": False, "mistake": "softmax_over_queries"}]}
    assert named_mistakes(entry) == ["no scale", "softmax over queries"]


def test_scorecard_with_narration_and_mistakes():
    from grader.interview import scorecard
    card = {"started": 0, "cap": 1200, "outcome": "finished", "follow_up": "11", "quiz": {"asked": 5, "right": 4},
            "parts": [{"id": "10", "name": "multi_head_attention", "outcome": "full marks", "seconds": 15 * 60 + 2,
                       "score": 10, "max_score": 10, "mistakes": {"mask after softmax": 2},
                       "narration": {"tensor_lines": 11, "annotated": 9, "right": 8}},
                      {"id": "11", "name": "grouped_query_attention", "outcome": "time's up", "seconds": None,
                       "score": 6.5, "max_score": 10, "mistakes": {}, "narration": None}]}
    text = scorecard(card)
    assert "full marks in 15:02" in text and "within the fluent band" in text
    assert "Part two   11 grouped_query_attention (GQA): 6.5/10 at the last save (time's up)" in text
    assert "Narration  10: 9 of 11 tensor lines annotated, 8 right" in text
    assert "Quiz       4/5 talking points right" in text
    assert "  - 10: mask after softmax (in 2 grades)" in text


def test_progress_columns_count_blank_completions_toward_five():
    from grader.interview import blank_summary, progress_columns
    slot = {"drills": [{"seconds": 900, "stub": "blank"}, {"seconds": None, "stub": "blank"},
                       {"seconds": 300}, {"seconds": 700, "stub": "blank"}, {"seconds": 800, "stub": "blank"}]}
    assert blank_summary(slot) == (3, 700, 800, "slower")
    assert progress_columns(slot).split() == ["3/5", "13:20"]
    assert progress_columns({}).split() == ["0/5", "—"]
