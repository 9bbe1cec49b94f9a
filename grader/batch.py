"""python -m grader batch SUBMISSIONS_DIR --csv grades.csv [NN ...] [--seed N] [--jobs N] [--timeout S]

Grades every folder in SUBMISSIONS_DIR (one per student, each a copy of exercises/) and writes a
gradebook: one row per student, a column per exercise, the total, a status and the error if any.
Each submission is graded by its own `python -m grader --path SUB --json ...` process, several
at once; one that outlives --timeout is killed with everything it started, and its row says so.
Every student gets the same seed, so the same inputs.
"""
import argparse
import csv
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from .exercises import REPO, all_exercises


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m grader batch", description=__doc__.split("\n\n")[1])
    parser.add_argument("submissions", help="folder holding one folder per student")
    parser.add_argument("exercises", nargs="*", metavar="NN", help="exercise numbers to grade (default: all)")
    parser.add_argument("--csv", required=True, metavar="FILE", help="where to write the gradebook")
    parser.add_argument("--seed", type=int, help="the seed every student is graded with (default: a fresh one)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="submissions graded at once "
                        "(default: the number of cores)")
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("GRADER_SUBMISSION_TIMEOUT", 900)),
                        help="seconds one submission may take in all (default: $GRADER_SUBMISSION_TIMEOUT or 900)")
    return parser.parse_intermixed_args(argv)


def grade_one(folder, exercises, seed, timeout):
    """Grades one folder in a child process; returns (JSON report or None, status, error)."""
    with tempfile.TemporaryDirectory(prefix="grade-batch-") as tmp:
        out, log = Path(tmp) / "report.json", Path(tmp) / "log.txt"
        cmd = [sys.executable, "-m", "grader", *exercises, "--path", str(folder.resolve()),
               "--seed", str(seed), "--json", str(out)]
        env = {**os.environ, "GRADER_JOBS": "1", "NO_COLOR": "1"}
        with open(log, "wb") as sink:
            proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink,
                                    env=env, start_new_session=True)
            try:
                code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)   # the grader and anything left behind
                except ProcessLookupError:
                    pass
                proc.wait()
        if code is None:
            return None, "timeout", f"grading took longer than {timeout:g} s"
        try:
            return json.loads(out.read_text()), "ok", ""
        except (OSError, ValueError):
            tail = log.read_bytes()[-2000:].decode(errors="replace").strip().splitlines()
            return None, "error", f"the grader exited {code}: " + (tail[-1] if tail else "no output")


def row(name, report, status, error, ids):
    if name[:1] in "=+-@":          # a spreadsheet would take the name for a formula
        name = "'" + name
    cells = {"student": name, "status": status, "error": error}
    if report is not None:
        scores = {ex["id"]: ex for ex in report["exercises"]}
        for i in ids:
            cells[i] = float(scores[i]["score"])
        cells["total"] = float(report["score"])
        broken = [f"{i}: {scores[i]['error']}" for i in ids if scores[i]["error"]]
        cells["error"] = "; ".join(broken)[:500]
    return cells


def main(argv):
    try:
        args = parse(argv)
    except SystemExit as e:
        return 2 if e.code else 0
    root = Path(args.submissions)
    known = [ex.id for ex in all_exercises()]
    ids = [w.zfill(2) for w in args.exercises] or known
    problem = (f"no such folder: {root}" if not root.is_dir() else
               next((f"unknown exercise {w!r}" for w in ids if w not in known), None))
    if problem:
        print(f"python -m grader batch: {problem}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    print(f"Grading {len(folders)} submissions in {root} with seed {seed}, {args.jobs} at a time",
          file=sys.stderr)
    rows, start = [], time.monotonic()
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        futures = {pool.submit(grade_one, f, args.exercises, seed, args.timeout): f for f in folders}
        for done, future in enumerate(as_completed(futures), 1):
            folder = futures[future]
            try:
                report, status, error = future.result()
            except Exception as e:     # the batch goes on whatever one submission did
                report, status, error = None, "error", f"{type(e).__name__}: {e}"
            rows.append(row(folder.name, report, status, error, ids))
            score = f"{report['score']:g}" if report else status
            end = "\r" if sys.stderr.isatty() and done < len(folders) else "\n"
            print(f"[{done}/{len(folders)}] {time.monotonic() - start:5.0f} s  {folder.name}: {score}"[:100].ljust(60),
                  end=end, file=sys.stderr, flush=True)
    rows.sort(key=lambda r: r["student"])
    with open(args.csv, "w", newline="") as f:
        writer = csv.DictWriter(f, ["student", *ids, "total", "status", "error"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    print(f"Wrote {args.csv}: {len(rows)} students, seed {seed}", file=sys.stderr)
    return 0
