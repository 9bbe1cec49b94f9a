"""Runs the real grader the way a learner does, and reads its JSON report."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grader.exercises import all_exercises  # noqa: E402

EXERCISES = all_exercises()
IDS = [ex.id for ex in EXERCISES]


def grade(path, *ids, seed=1, env=None, timeout=600, extra=()):
    """Runs `python -m grader` on `path`; returns (exit code, JSON report, printed text)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        proc = subprocess.run(
            [sys.executable, "-m", "grader", *ids, "--path", str(path), "--seed", str(seed), "--json", str(out),
             *extra],
            cwd=REPO, capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "NO_COLOR": "1", **(env or {})})
        report = json.loads(out.read_text()) if out.exists() else None
    return proc.returncode, report, proc.stdout + proc.stderr


def submission(tmp_path, files):
    """A submission folder: {exercise file name: source text or a Path to copy}."""
    for name, content in files.items():
        target = tmp_path / name
        if isinstance(content, Path):
            shutil.copy(content, target)
        else:
            target.write_text(content)
    return tmp_path


def by_id(report):
    return {ex["id"]: ex for ex in report["exercises"]}
