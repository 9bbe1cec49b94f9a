"""python -m grader batch SUBMISSIONS_DIR --csv grades.csv [NN ...] [--seed N] [--jobs N] [--timeout S]
                                                              [--reports DIR]

Grades every folder in SUBMISSIONS_DIR (one per student: a copy of exercises/, or a whole student
repository as `gh classroom clone student-repos` makes them, whose exercises/ is graded) and writes a
gradebook: one row per student, a column per exercise, the total, a status (ok, broken, tampering,
timeout), the errors, and an audit of the repository's grader/ and .github/ against the course
template. The batch imports torch and starts the sandbox's zygote once; each submission is graded
by a fresh fork of the batch (one worker each when several run at once; more for one that would
leave cores idle) over fresh channels to that zygote, whose children end with them. One that outlives --timeout is killed with everything it
started, and its row says so; one graded while the zygote died is graded again on a new one.
Every student gets the same seed, so the same inputs. With --reports, each student's own report
(the page `python -m grader` prints, and its JSON) is written beside the gradebook, to hand back.
"""
import argparse
import csv
import io
import json
import os
import random
import signal
import sys
import tempfile
import time
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from .exercises import UnknownExercise, select
from .status import BatchStatus, Status


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m grader batch", description=__doc__.split("\n\n")[1])
    parser.add_argument("submissions", help="folder holding one folder per student")
    parser.add_argument("exercises", nargs="*", metavar="NN", help="exercise numbers to grade (default: all)")
    parser.add_argument("--csv", required=True, metavar="FILE", help="where to write the gradebook")
    parser.add_argument("--seed", type=int, help="the seed every student is graded with "
                        "(default: the course's, grader/course.cfg)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="submissions graded at once "
                        "(default: the number of cores)")
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("GRADER_SUBMISSION_TIMEOUT", 900)),
                        help="seconds one submission may take in all (default: $GRADER_SUBMISSION_TIMEOUT or 900)")
    parser.add_argument("--reports", metavar="DIR", help="also write each student's report there: STUDENT.txt "
                        "(the page python -m grader prints) and STUDENT.json (its --json report)")
    return parser.parse_intermixed_args(argv)


ERROR_LIMIT = 4000          # characters of the error column; a longer one says how much was cut
MAX_TRIES = 3               # gradings of one submission cut short by the zygote's death, before giving up
FAULTS = {"crashed", "import", "spent", "grader"}


def exercises_of(folder):
    """The folder to grade: a repository's exercises/, else the folder itself."""
    return folder / "exercises" if (folder / "exercises").is_dir() else folder


def is_repository(folder):
    return any((folder / name).exists() for name in (".git", ".github", "grader"))


class IsolationRefused(Exception):
    """The sandbox lacks what a course's grade needs: the batch stops, and says why, rather than
    fill a gradebook."""


class SandboxLost(Exception):
    """The zygote could not be (re)started: the batch stops rather than blame students for it."""


@dataclass
class Job:
    folder: Path
    pid: int
    started: float
    result: Path
    log: Path
    generation: int          # which zygote it was graded with
    tries: int
    page: str = ""           # the student's printed report


def _worker(folder, exercises, seed, attached, require, result, log):
    """In the forked worker: grades one folder over its own channel, writes the outcome as JSON,
    and never returns."""
    code = 1
    try:
        os.setpgid(0, 0)                    # a Ctrl-C reaches the batch, which ends its workers
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        from . import report, session
        from .__main__ import bound_the_grader
        from .sandbox import IsolationError
        bound_the_grader()
        try:
            graded = exercises_of(folder).resolve()
            results = session.run(exercises, graded, seed, "cpu", attached, require)
            page = report.render(results, seed, str(graded), "".join(ex.id + " " for ex in exercises),
                                 stream=io.StringIO(),      # not a terminal: no colours
                                 max_failures=99 if len(exercises) == 1 else 3)     # as python -m grader
            outcome = {"report": report.to_json(results, seed), "page": page}
        except IsolationError as e:
            outcome = {"isolation": str(e)}
        except Exception as e:
            outcome = {"error": f"{type(e).__name__}: {e}"}
        if not attached.channel(0).answers():   # what was graded while the zygote died is no student's doing
            outcome = {"lost": True}
        with open(result, "w") as f:
            json.dump(outcome, f)
        code = 0
    except BaseException:
        traceback.print_exc()               # to the log, whose last line the row quotes
        sys.stderr.flush()
    finally:
        os._exit(code)


class Pool:
    """Forked workers sharing one zygote: the batch imported torch and started the zygote once;
    each submission gets a fresh worker (a fork of the batch, so nothing of one student's grading
    outlives it) and a fresh channel, whose children end with it."""

    def __init__(self, exercises, seed, require, jobs, timeout, tmp):
        self.exercises, self.seed, self.require = exercises, seed, require
        self.jobs, self.timeout, self.tmp = jobs, timeout, Path(tmp)
        self.zygote, self.generation, self.running, self.started = None, 0, {}, 0
        self._restart()

    def _restart(self):
        from .sandbox.zygote import Zygote
        if self.zygote is not None:
            self.zygote.close()
        self.zygote = Zygote(1, "cpu")
        self.generation += 1
        from . import session       # imports torch while the zygote does the same
        from .sandbox import IsolationError
        session.torch.set_num_threads(1)     # before any fork: a process that never spun threads forks safely
        try:
            attached = self.zygote.attach()
            try:
                session.check_isolation(attached.channel(0), self.require)
            finally:
                attached.close()
        except IsolationError as e:
            raise IsolationRefused(str(e)) from None
        except RuntimeError as e:
            raise SandboxLost(str(e)) from None

    def start(self, folder, tries=1, workers=1):
        """Starts grading one folder, with `workers` of its own (more than one only where no other
        submission would take the cores)."""
        self.started += 1
        result, log = self.tmp / f"{self.started}.json", self.tmp / f"{self.started}.log"
        try:
            attached = self.zygote.attach(workers)
        except OSError:                     # the zygote died between two submissions
            self.replace_lost_zygote(self.generation, "between two submissions")
            attached = self.zygote.attach(workers)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            self.zygote.keep_only(-1)       # the worker holds no channel but its own
            _worker(folder, self.exercises, self.seed, attached, self.require, result, log)
        try:
            os.setpgid(pid, pid)            # as the worker does itself: whichever comes first
        except OSError:
            pass
        attached.close()                    # the worker's alone now: it closes when the worker ends
        self.running[pid] = Job(folder, pid, time.monotonic(), result, log, self.generation, tries)

    def finished(self):
        """Waits for the next worker to end; returns (job, report or None, status, error)."""
        while True:
            now = time.monotonic()
            for pid, job in list(self.running.items()):
                if now - job.started > self.timeout:
                    _kill(pid)
                    del self.running[pid]
                    return job, None, BatchStatus.TIMEOUT, f"grading took longer than {self.timeout:g} s"
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    del self.running[pid]
                    return (job, *self._outcome(job, status))
            time.sleep(0.02)

    def _outcome(self, job, status):
        try:
            outcome = json.loads(job.result.read_text())
        except (OSError, ValueError):
            tail = job.log.read_bytes()[-2000:].decode(errors="replace").strip().splitlines()
            why = f"killed by {signal.Signals(os.WTERMSIG(status)).name}" if os.WIFSIGNALED(status) else \
                f"exited {os.waitstatus_to_exitcode(status)}"
            return None, BatchStatus.BROKEN, f"the grader {why}: " + (tail[-1] if tail else "no output")
        if "isolation" in outcome:
            raise IsolationRefused(outcome["isolation"])
        if "lost" in outcome:
            return None, "lost", ""
        if "error" in outcome:
            return None, BatchStatus.BROKEN, f"the grader failed: {outcome['error']}"
        job.page = outcome.get("page", "")
        return outcome["report"], BatchStatus.OK, ""

    def replace_lost_zygote(self, generation, when):
        """After the zygote was found dead: a new one, unless that happened already."""
        if generation == self.generation:
            print(f"\nthe sandbox's zygote died {when}: starting a new one", file=sys.stderr)
            self._restart()

    def close(self):
        for pid in list(self.running):
            _kill(pid)
        self.running.clear()
        if self.zygote is not None:
            self.zygote.close()


def _kill(pid):
    for kill in (os.killpg, os.kill):       # the worker and anything it started
        try:
            kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.waitpid(pid, 0)


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


def grade_all(folders, exercises, seed, jobs, timeout, ids, reports=None):
    """One row per folder, `jobs` at a time; progress on stderr; each student's report in `reports`."""
    rows, start, waiting = [], time.monotonic(), deque((f, 1) for f in folders)
    require = course_minimum_here()
    with tempfile.TemporaryDirectory(prefix="grade-batch-") as tmp:
        pool = Pool(exercises, seed, require, jobs, timeout, tmp)
        try:
            while waiting or pool.running:
                while waiting and len(pool.running) < jobs:
                    folder, tries = waiting.popleft()
                    spare = jobs - len(pool.running) - len(waiting)     # cores no other submission will take
                    pool.start(folder, tries, max(1, spare))
                job, report, status, error = pool.finished()
                if status == "lost":
                    pool.replace_lost_zygote(job.generation, f"while {job.folder.name} was graded")
                    if job.tries < MAX_TRIES:
                        waiting.appendleft((job.folder, job.tries + 1))
                        continue
                    report, status, error = None, BatchStatus.BROKEN, f"the sandbox died each of the {MAX_TRIES} times " \
                                                            "this submission was graded"
                rows.append(row(job.folder.name, report, status, error, ids, audit_of(job.folder)))
                if reports is not None:
                    hand_back(reports, job.folder.name, report, job.page, rows[-1])
                score = f"{report['score']:g}" if report else status
                end = "\r" if sys.stderr.isatty() and len(rows) < len(folders) else "\n"
                print(f"[{len(rows)}/{len(folders)}] {time.monotonic() - start:5.0f} s  {job.folder.name}: {score}"
                      [:100].ljust(60), end=end, file=sys.stderr, flush=True)
        finally:
            pool.close()
    return rows


def hand_back(reports, name, report, page, cells):
    """STUDENT.txt, the page the student would see, and STUDENT.json; a submission that could not be
    graded gets its row's reason instead."""
    if report is None:
        page = f"Not graded: {cells['status']}. {cells['error']}"
    else:
        with open(reports / f"{name}.json", "w") as f:
            json.dump(report, f, indent=2)
    (reports / f"{name}.txt").write_text(page + "\n")


def course_minimum_here():
    """The layers every batch requires, unless told to grade with less (as --require-isolation)."""
    from .sandbox.host import course_minimum
    if os.environ.get("GRADER_ALLOW_WEAK_ISOLATION") == "1":
        return ()
    return course_minimum(os.geteuid() == 0)


def main(argv):
    try:
        args = parse(argv)
    except SystemExit as e:
        return 2 if e.code else 0
    root = Path(args.submissions)
    problem = None if root.is_dir() else f"no such folder: {root}"
    try:
        exercises = select(args.exercises)
        ids = [ex.id for ex in exercises]
    except UnknownExercise as e:
        problem = problem or str(e)
    reports = Path(args.reports) if args.reports else None
    if reports is not None and not problem:
        try:
            reports.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            problem = f"cannot write reports to {reports}: {e.strerror}"
    if problem:
        print(f"python -m grader batch: {problem}", file=sys.stderr)
        return 2
    from .seeds import default_seed      # the course's seed (grader/course.cfg), as Classroom and Gradescope use
    seed = args.seed if args.seed is not None else default_seed(course_mode=True)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    jobs = max(1, args.jobs)
    print(f"Grading {len(folders)} submissions in {root} with seed {seed}, {jobs} at a time",
          file=sys.stderr)
    try:
        rows = grade_all(folders, exercises, seed, jobs, args.timeout, ids, reports)
    except IsolationRefused as e:
        print(f"\npython -m grader batch: stopped, no gradebook written. python -m grader: {e}", file=sys.stderr)
        return 3
    except SandboxLost as e:
        print(f"\npython -m grader batch: stopped, no gradebook written. {e}", file=sys.stderr)
        return 1
    rows.sort(key=lambda r: r["student"])
    with open(args.csv, "w", newline="") as f:
        writer = csv.DictWriter(f, ["student", *ids, "total", "status", "error", "audit"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    print(f"Wrote {args.csv}: {len(rows)} students, seed {seed}" +
          (f"; their reports in {reports}/" if reports is not None else ""), file=sys.stderr)
    return 0
