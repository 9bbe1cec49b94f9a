"""The graded student template teaches without answering: hints without their near-code level, a
README written for students, local reports that say public tests only; SELF_STUDY=1 keeps it all."""
import json
import re
import shutil
import sys

import pytest

from helpers import REPO
from test_classroom import ENV
from test_course_tools import run

from grader.template import files as template_files

HAS_05 = (REPO / "solutions" / "05_softmax.py").is_file()


def test_the_graded_template_ships_no_near_code_and_self_study_keeps_it():
    from grader.study.hints import parse_hints
    graded, alone = template_files(), template_files(self_study=True)
    hints = [k for k in alone if re.fullmatch(r"exercises/hints/\d\d_\w+\.md", k)]
    assert hints
    for name in hints:
        levels, whens = parse_hints(graded[name].decode())
        full_levels, full_whens = parse_hints(alone[name].decode())
        assert sorted(levels) == [1, 2] and 3 in full_levels, name
        assert whens == full_whens and levels == {n: full_levels[n] for n in (1, 2)}, name
        assert alone[name] == (REPO / name).read_bytes()
        assert b"```" not in graded[name], f"{name}: a code block is left in the graded template's hints"
    assert "grader/course.cfg" not in graded and "grader/course.cfg" not in alone


def headings(text):
    return [line for line in text.splitlines() if line.startswith("#")]


def test_the_student_readme_is_written_for_students():
    graded = template_files()["README.md"].decode()
    alone = template_files(self_study=True)["README.md"].decode()
    for text in (graded, alone):
        for never in ("grader/tests", "tests/cheats", "make test", "What the grader guarantees", "For instructors",
                      "make solution", "<!--"):
            assert never not in text, never
        assert headings(text) == ["# Attention from scratch", "## Getting started", "## Working an exercise",
                                  "## What the tests check", "## The exercises", "## Studying", "## Your files",
                                  "## How your code runs"]
        assert "| 15 |" in text
    assert "public tests only" in graded and "Classroom" in graded and "near-code" not in graded
    assert "instructor" not in alone.lower() and "Classroom" not in alone and "near-code" in alone


@pytest.mark.skipif(not HAS_05, reason="needs the reference for 05")
def test_a_graded_template_never_says_complete_or_full_marks(tmp_path):
    from grader.template import write
    dest = write(tmp_path / "student")
    shutil.copy(REPO / "solutions" / "05_softmax.py", dest / "exercises")
    proc = run([sys.executable, "-m", "grader", "05", "--json", "r.json"], cwd=dest, env=ENV)
    assert json.loads((dest / "r.json").read_text())["score"] == 10.0, proc.stdout + proc.stderr
    assert "public tests only: your course grade comes from Classroom" in proc.stdout
    assert "complete" not in proc.stdout and "Full marks" not in proc.stdout, proc.stdout
    proc = run([sys.executable, "-m", "grader.study", "progress"], cwd=dest)
    assert "public tests only" in proc.stdout and "public tests pass" in proc.stdout, proc.stdout + proc.stderr
    assert "complete" not in proc.stdout and "full marks" not in proc.stdout.lower()
    alone = write(tmp_path / "alone", self_study=True)
    shutil.copy(REPO / "solutions" / "05_softmax.py", alone / "exercises")
    proc = run([sys.executable, "-m", "grader", "05"], cwd=alone, env=ENV)
    assert "Full marks" in proc.stdout and "public tests only" not in proc.stdout


