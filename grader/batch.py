"""python -m grader batch SUBMISSIONS_DIR --csv grades.csv [NN ...] [--seed N] [--jobs N] [--timeout S]

Grades every folder in SUBMISSIONS_DIR (one per student: a copy of exercises/, or a whole student
repository as `gh classroom clone student-repos` makes them, whose exercises/ is graded) and writes a
gradebook: one row per student, a column per exercise, the total, a status (ok, broken, tampering,
timeout), the errors, and an audit of the repository's grader/ and .github/ against the course
template. Each submission is graded by its own `python -m grader --path SUB --json ...` process
(GRADER_JOBS=1: one worker each), several at once; one that outlives --timeout is killed with
everything it started, and its row says so. Every student gets the same seed, so the same inputs.
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

from .exercises import REPO, UnknownExercise, select
from .status import BatchStatus, Status


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


ERROR_LIMIT = 4000          # characters of the error column; a longer one says how much was cut
FAULTS = {"crashed", "import", "spent", "grader"}


def exercises_of(folder):
    """The folder to grade: a repository's exercises/, else the folder itself."""
    return folder / "exercises" if (folder / "exercises").is_dir() else folder


def is_repository(folder):
    return any((folder / name).exists() for name in (".git", ".github", "grader"))


def grade_one(folder, exercises, seed, timeout):
    """Grades one folder in a child process; returns (JSON report or None, status, error)."""
    with tempfile.TemporaryDirectory(prefix="grade-batch-") as tmp:
        out, log = Path(tmp) / "report.json", Path(tmp) / "log.txt"
        cmd = [sys.executable, "-m", "grader", *exercises, "--path", str(exercises_of(folder).resolve()),
               "--seed", str(seed), "--json", str(out), "--require-isolation"]
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
            return None, BatchStatus.TIMEOUT, f"grading took longer than {timeout:g} s"
        if code == 3:       # the sandbox lacks the course minimum: no student is graded like that
            raise IsolationRefused(log.read_bytes()[-3000:].decode(errors="replace").strip())
        try:
            return json.loads(out.read_text()), BatchStatus.OK, ""
        except (OSError, ValueError):
            tail = log.read_bytes()[-2000:].decode(errors="replace").strip().splitlines()
            return None, BatchStatus.BROKEN, f"the grader exited {code}: " + (tail[-1] if tail else "no output")


class IsolationRefused(Exception):
    """A grader refused to run: the batch stops, and says why, rather than fill a gradebook."""


def verdict(report, ids):
    """(status, error) from a report: tampering > timeout > broken > ok, and every reason."""
    status, reasons = BatchStatus.OK, []
    for ex in report["exercises"]:
        if ex["id"] not in ids:
            continue
        why, found = [], BatchStatus.OK
        if ex.get("error"):
            why.append(ex["error"])
            found = (BatchStatus.TAMPERING if "tampering" in ex["error"]
                     else BatchStatus.BROKEN if ex["status"] == Status.BROKEN else BatchStatus.OK)
        for t in ex["tests"]:
            kind = t.get("kind", "")
            this = (BatchStatus.TAMPERING if "tampering" in t["message"]
                    else BatchStatus.TIMEOUT if kind == "timeout"
                    else BatchStatus.BROKEN if kind in FAULTS else BatchStatus.OK)
            if this != BatchStatus.OK and t["message"] not in why and kind != "spent":
                why.append(t["message"])
            found = max(found, this, key=lambda s: s.rank)
        status = max(status, found, key=lambda s: s.rank)
        if why:
            reasons.append(f"{ex['id']}: " + " | ".join(why))
    return status, "; ".join(reasons)


def cut(text, limit=ERROR_LIMIT):
    if len(text) <= limit:
        return text
    return text[:limit] + f" [... {len(text) - limit} more characters cut]"


def row(name, report, status, error, ids, audit=""):
    if name[:1] in "=+-@":          # a spreadsheet would take the name for a formula
        name = "'" + name
    cells = {"student": name, "status": status, "error": cut(error), "audit": audit}
    if report is not None:
        scores = {ex["id"]: ex for ex in report["exercises"]}
        for i in ids:
            cells[i] = float(scores[i]["score"])
        cells["total"] = float(report["score"])
        cells["status"], error = verdict(report, ids)
        cells["error"] = cut(error)
    return cells


def audit_of(folder):
    """'clean', what differs from the course template, or '' for a folder that is not a repository."""
    if not is_repository(folder):
        return ""
    from .template import audit
    try:
        findings = audit(folder)
    except OSError as e:
        return f"not audited: {e}"
    return "; ".join(findings) if findings else "clean"


def main(argv):
    try:
        args = parse(argv)
    except SystemExit as e:
        return 2 if e.code else 0
    root = Path(args.submissions)
    problem = None if root.is_dir() else f"no such folder: {root}"
    try:
        ids = [ex.id for ex in select(args.exercises)]
    except UnknownExercise as e:
        problem = problem or str(e)
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
            except IsolationRefused as e:
                for f in futures:
                    f.cancel()
                print(f"\npython -m grader batch: stopped, no gradebook written. {e}", file=sys.stderr)
                return 3
            except Exception as e:     # the batch goes on whatever one submission did
                report, status, error = None, BatchStatus.BROKEN, f"{type(e).__name__}: {e}"
            rows.append(row(folder.name, report, status, error, ids, audit_of(folder)))
            score = f"{report['score']:g}" if report else status
            end = "\r" if sys.stderr.isatty() and done < len(folders) else "\n"
            print(f"[{done}/{len(folders)}] {time.monotonic() - start:5.0f} s  {folder.name}: {score}"[:100].ljust(60),
                  end=end, file=sys.stderr, flush=True)
    rows.sort(key=lambda r: r["student"])
    with open(args.csv, "w", newline="") as f:
        writer = csv.DictWriter(f, ["student", *ids, "total", "status", "error", "audit"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    print(f"Wrote {args.csv}: {len(rows)} students, seed {seed}", file=sys.stderr)
    return 0
