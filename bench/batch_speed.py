"""Throughput of `python -m grader batch`: 40 submissions (correct, partial, broken) on this machine.

python bench/batch_speed.py [N]   prints submissions graded per minute (N submissions, default 40).
"""
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def build(root, n):
    solutions = sorted((REPO / "solutions").glob("[0-9][0-9]_*.py"))
    stubs = {p.name: p for p in (REPO / "exercises").glob("[0-9][0-9]_*.py")}
    for i in range(n):
        sub = root / f"student{i:03d}"
        sub.mkdir()
        kind = ("correct", "partial", "broken")[i % 3]
        for j, ref in enumerate(solutions):
            if kind == "partial" and j % 2 and ref.name in stubs:
                shutil.copy(stubs[ref.name], sub / ref.name)          # half not started yet
            elif kind == "broken" and j % 5 == 0:
                (sub / ref.name).write_text(ref.read_text() + "\ndef oops(:\n")   # syntax error
            else:
                shutil.copy(ref, sub / ref.name)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "class"
        root.mkdir()
        build(root, n)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "grader", "batch", str(root), "--csv", str(Path(tmp) / "g.csv"),
                               "--seed", "1"], cwd=REPO, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - start
        rows = (Path(tmp) / "g.csv").read_text().splitlines()[1:] if proc.returncode == 0 else []
    if len(rows) != n:
        sys.exit(f"batch failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    print(f"{n} submissions in {wall:.1f} s: {n / wall * 60:.1f} submissions per minute")


if __name__ == "__main__":
    main()
