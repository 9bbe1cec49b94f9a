"""Throughput of `python -m grader batch`: 40 submissions (correct, partial, broken) on this machine.

python bench/batch_speed.py [N] [--runs K] [--repo DIR]
prints submissions graded per minute (N submissions, default 40), for each of K runs (default 1)
and their median; --repo measures the grader of another checkout (e.g. a worktree of main) on
the same submissions, so old and new can be run in turns.
"""
import argparse
import shutil
import statistics
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=40, help="submissions (default 40)")
    parser.add_argument("--runs", type=int, default=1, help="runs, then their median (default 1)")
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout whose grader is measured")
    args = parser.parse_args()
    n, rates = args.n, []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "class"
        root.mkdir()
        build(root, n)
        for _ in range(args.runs):
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "grader", "batch", str(root), "--csv",
                                   str(Path(tmp) / "g.csv"), "--seed", "1"], cwd=args.repo, stderr=subprocess.PIPE,
                                  text=True)
            wall = time.perf_counter() - start
            rows = (Path(tmp) / "g.csv").read_text().splitlines()[1:] if proc.returncode == 0 else []
            if len(rows) != n:
                sys.exit(f"batch failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
            rates.append(n / wall * 60)
            print(f"{n} submissions in {wall:.1f} s: {rates[-1]:.1f} submissions per minute", flush=True)
            (Path(tmp) / "g.csv").unlink()
    if args.runs > 1:
        print(f"median of {args.runs} runs: {statistics.median(rates):.1f} submissions per minute")


if __name__ == "__main__":
    main()
