"""python -m grader batch SUBMISSIONS_DIR --csv grades.csv [NN ...] [--seed N] [--jobs N] [--timeout S]
                 [--reports DIR] [--roster FILE] [--deadline TIME] [--summary FILE] [--similarity FILE]

Grades every folder in SUBMISSIONS_DIR (one per student: a copy of exercises/, or a whole student
repository as `gh classroom clone student-repos` makes them, whose exercises/ is graded) and writes a
gradebook: one row per student, a column per exercise, the total, a status (ok, broken, timeout,
tampering; missing, not submitted, not attempted), the errors, and an audit of the repository's
grader/ and .github/ against the course template. The batch imports torch and starts the sandbox's zygote once; each submission is graded
by a fresh fork of the batch (one worker each when several run at once; more for one that would
leave cores idle) over fresh channels to that zygote, whose children end with them. One that outlives --timeout is killed with everything it
started, and its row says so; one graded while the zygote died is graded again on a new one.
Every student gets the same seed, so the same inputs. With --reports, each student's own report
(the page `python -m grader` prints, and its JSON) is written beside the gradebook, to hand back.
A git repository is graded at a commit, never in its working tree: HEAD's, or with --deadline the
last one at or before it (grader/gradebook.py). --roster gives every student of the class a row;
the summary (each exercise's statistics) is printed and written beside the gradebook; --similarity
writes the pairs of near-identical submissions (grader/similarity.py).
"""
import argparse
import csv
import io
import json
import os
import re
import signal
import stat
import sys
import tempfile
import time
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from .exercises import UnknownExercise, select
from .gradebook import (SUMMARY_COLUMNS, CourseError, Submission, match_roster, parse_deadline, prepare, read_roster,
                        summary, summary_text)
from .paths import Refused, lstat, open_folder, shown
from .report import ONCE, dumps_bounded
from .similarity import COLUMNS, THRESHOLD, similar_pairs
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
    parser.add_argument("--roster", metavar="FILE", help="the class: one student per line, or GitHub Classroom's "
                        "roster CSV; every student gets a row, those with no folder as missing")
    parser.add_argument("--deadline", metavar="TIME", help="grade each git repository's last commit at or before "
                        "TIME (ISO 8601 with a time zone, e.g. 2026-12-01T23:59:00+01:00)")
    parser.add_argument("--summary", metavar="FILE", help="where to write each exercise's statistics "
                        "(default: beside --csv, NAME-summary.csv)")
    parser.add_argument("--similarity", metavar="FILE", help="also write the pairs of submissions whose code is "
                        "near-identical once names and layout are normalised")
    return parser.parse_intermixed_args(argv)


ERROR_LIMIT = 4000          # characters of the error column; a longer one says how much was cut
MAX_TRIES = 3               # gradings of one submission cut short by the zygote's death, before giving up
FAULTS = {"crashed", "import", "spent", "grader"}


def exercises_of(folder):
    """The folder to grade: a repository's exercises/, else the folder itself. Nothing is followed:
    an exercises/ that is a link is graded as such, which refuses it (grader/paths.py)."""
    try:
        st = lstat(folder / "exercises")
    except Refused:
        return folder                       # the folder's own path holds a link: grading it says so
    return folder / "exercises" if st is not None and (stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode)) else folder


def is_repository(folder):
    return any(lstat(folder / name) is not None for name in (".git", ".github", "grader"))


def shown_name(name):
    """A student's folder name as it may be printed or name a file: control characters escaped."""
    return shown(name, 200)


def cell(text):
    """A CSV cell a spreadsheet takes as text: one starting with = + - @ TAB or CR would be a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


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

    @property
    def audit(self):
        """What the worker's audit found (it runs first, so it is there when the grading is cut short)."""
        try:
            return self.result.with_suffix(".audit").read_text()
        except OSError:
            return "not audited: the worker ended before its audit"


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
        # The audit runs here, bounded as the grading is; written at once, so a grading cut short keeps it.
        with open(result.with_suffix(".audit"), "w") as f:
            f.write(audit_of(folder))
        try:
            graded = exercises_of(folder)
            results = session.run(exercises, graded, seed, "cpu", attached, require, root=folder)
            page = report.render(results, seed, shown(str(graded), 1000), "".join(ex.id + " " for ex in exercises),
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
    """(status, error) from a report: tampering > timeout > broken > ok, and every reason, once: the
    exercises one reason holds for are named together ("01, 02: ...")."""
    status, reasons = BatchStatus.OK, {}
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
            if this != BatchStatus.OK and t["message"] not in why and kind != "spent" and t["message"] != ONCE:
                why.append(t["message"])
            found = max(found, this, key=lambda s: s.rank)
        status = max(status, found, key=lambda s: s.rank)
        if why:
            reasons.setdefault(" | ".join(why), []).append(ex["id"])
    return status, "; ".join(f"{', '.join(ids_)}: {why}" for why, ids_ in reasons.items())


def cut(text, limit=ERROR_LIMIT):
    if len(text) <= limit:
        return text
    return text[:limit] + f" [... {len(text) - limit} more characters cut]"


def nothing_written(report, ids):
    """Why a graded report counts as not attempted, or '' when some exercise holds work."""
    found = [ex for ex in report["exercises"] if ex["id"] in ids]
    if any(ex["status"] not in (Status.MISSING, Status.NOT_STARTED) for ex in found):
        return ""
    if all(ex["status"] == Status.MISSING for ex in found):
        return "no exercise file"
    return "nothing written: " + ", ".join(f"{ex['id']} " + ("no file" if ex["status"] == Status.MISSING
                                                             else "the stub") for ex in found)


def row(name, report, status, error, ids, audit=""):
    cells = {"student": cell(shown_name(name)), "status": status, "error": cell(cut(error)), "audit": cell(audit)}
    if report is not None:
        scores = {ex["id"]: ex for ex in report["exercises"]}
        for i in ids:
            cells[i] = float(scores[i]["score"])
        cells["total"] = float(report["score"])
        cells["status"], error = verdict(report, ids)
        if cells["status"] == BatchStatus.OK and nothing_written(report, ids):
            cells["status"], error = BatchStatus.NOT_ATTEMPTED, nothing_written(report, ids)
        cells["error"] = cell(cut(error))
    return cells


def audit_of(folder):
    """'clean', what differs from the course template, or '' for a folder that is not a repository."""
    from .template import audit
    try:
        if not is_repository(folder):
            return ""
        findings = audit(folder)
        dot_git = folder / ".git"
        if dot_git.is_dir() and not dot_git.is_symlink():      # the history too: an edit undone later
            from .history import history_findings
            findings += [f for f in history_findings(folder) if not f.startswith("history not audited")]
    except (Refused, OSError) as e:
        return f"not audited: {e}"
    except Exception as e:              # the audit's own fault costs the audit column, not the grade
        return f"not audited: {type(e).__name__}: {shown(e)}"
    return "; ".join(findings) if findings else "clean"


def grade_all(folders, exercises, seed, jobs, timeout, ids, reports=None, students=None):
    """One row per folder, `jobs` at a time; progress on stderr; each student's report in `reports`;
    `students` ({folder: Submission}) names each folder's student and its commit."""
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
                    pool.replace_lost_zygote(job.generation, f"while {shown_name(job.folder.name)} was graded")
                    if job.tries < MAX_TRIES:
                        waiting.appendleft((job.folder, job.tries + 1))
                        continue
                    report, status, error = None, BatchStatus.BROKEN, f"the sandbox died each of the {MAX_TRIES} times " \
                                                            "this submission was graded"
                sub = (students or {}).get(job.folder)
                name = sub.student if sub else job.folder.name
                rows.append(row(name, report, status, error, ids, job.audit))
                if sub:
                    annotate(rows[-1], sub, seed)
                if reports is not None:
                    hand_back(reports, name, report, job.page, rows[-1], job.folder)
                score = f"{report['score']:g}" if report else status
                end = "\r" if sys.stderr.isatty() and len(rows) < len(folders) else "\n"
                print(f"[{len(rows)}/{len(folders)}] {time.monotonic() - start:5.0f} s  {shown_name(name)}: {score}"
                      [:100].ljust(60), end=end, file=sys.stderr, flush=True)
        finally:
            pool.close()
    return rows


def annotate(cells, sub, seed):
    """The row's commit, its time and the seed; what the batch noted about the submission, first."""
    cells.update(sub.cells(), seed=seed)
    cells["error"] = cut("; ".join(filter(None, [sub.note, cells.get("error", "")])))


def absent_row(sub, ids, seed):
    """The row of a student with nothing graded: 0 everywhere for one missing or not submitted."""
    cells = row(sub.student, None, sub.status, "", ids)
    if sub.status in (BatchStatus.MISSING, BatchStatus.NOT_SUBMITTED, BatchStatus.BROKEN):   # broken: e.g. .git a link
        cells.update({i: 0.0 for i in ids}, total=0.0)
    annotate(cells, sub, seed)
    return cells


def hand_back(reports, name, report, page, cells, folder=None):
    """STUDENT.txt, the page the student would see, and STUDENT.json; a submission that could not be
    graded gets its row's reason instead. Neither names the instructor's folders, nor offers a replay
    of tests the student does not have."""
    name = shown_name(name).replace("/", "_")
    name = "_" + name if name.startswith(".") else name
    if report is None:
        page = f"Not graded: {cells['status']}. {cells['error']}"
    else:
        private = {text for p in (folder, exercises_of(folder)) for text in (str(p), shown(str(p), 1000))
                   } if folder is not None else []
        for path in sorted(private, key=len, reverse=True):
            page = page.replace(path + "/", "exercises/").replace(path, "exercises")
        commit = f", commit {cells['commit'][:12]} of {cells['commit_time']}" if cells.get("commit") else ""
        page = "\n".join(line for line in page.splitlines() if "SEED=" not in line and "--seed" not in line)
        page = re.sub(r" \(make grade EX=\d+ shows all\)", "", page)      # its make grade has the public tests only
        page += (f"\nGraded by your instructor with the course's hidden tests (seed {report['seed']}{commit}). "
                 "make grade in your repository runs the public tests only.")
        text = dumps_bounded(report)          # under the size cap, as --json writes it
        for path in sorted(private, key=len, reverse=True):
            text = text.replace(json.dumps(path)[1:-1], "exercises")
        (reports / f"{name}.json").write_text(text)
    (reports / f"{name}.txt").write_text(page + "\n")


def course_minimum_here():
    """The layers every batch requires, unless told to grade with less (as --require-isolation)."""
    from .sandbox.host import course_minimum
    if os.environ.get("GRADER_ALLOW_WEAK_ISOLATION") == "1":
        return ()
    return course_minimum(os.geteuid() == 0)


def students_in(root):
    """One folder per student: each folder in `root`, and each link there too (its row says it is
    refused; nothing is followed). Refused when `root`'s own path holds a link."""
    fd = open_folder(root)
    try:
        with os.scandir(fd) as entries:
            return sorted(root / e.name for e in entries
                          if not e.name.startswith(".") and (e.is_symlink() or e.is_dir(follow_symlinks=False)))
    finally:
        os.close(fd)


def prepare_unlinked(sub, deadline, work):
    """gradebook.prepare, but for a student folder that is a symbolic link: nothing of it is
    followed, not even its .git; it is graded as it stands, which refuses it with the reason."""
    if sub.folder is not None:
        st = lstat(sub.folder)
        if st is not None and stat.S_ISLNK(st.st_mode):
            sub.graded = sub.folder
            return sub
    return prepare(sub, deadline, work)


def main(argv):
    try:
        args = parse(argv)
    except SystemExit as e:
        return 2 if e.code else 0
    root = Path(args.submissions)
    problem, folders = None, []
    try:
        folders = students_in(root)
    except Refused as e:
        problem = f"{e}; give the folder's own path"
    except OSError:
        problem = f"no such folder: {root}"
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
    try:
        roster = read_roster(args.roster) if args.roster and not problem else None
        deadline = parse_deadline(args.deadline) if args.deadline else None
    except CourseError as e:
        problem = problem or str(e)
    summary_file = args.summary or str(Path(args.csv).with_name(Path(args.csv).stem + "-summary.csv"))
    for out in (args.csv, summary_file, args.similarity):
        if out and not problem and not Path(out).absolute().parent.is_dir():
            problem = f"cannot write {out}: no folder {Path(out).absolute().parent}"
    if problem:
        print(f"python -m grader batch: {problem}", file=sys.stderr)
        return 2
    from .seeds import default_seed      # the course's seed (grader/course.cfg), as Classroom and Gradescope use
    seed = args.seed if args.seed is not None else default_seed(course_mode=True)
    jobs = max(1, args.jobs)
    print(f"Grading {len(folders)} submissions in {root} with seed {seed}, {jobs} at a time",
          file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="grade-commits-") as work:
        subs = [prepare_unlinked(sub, deadline, Path(work)) for sub in
                (match_roster(folders, roster) if roster else [Submission(f.name, f) for f in folders])]
        graded = {sub.graded: sub for sub in subs if not sub.status}
        try:
            rows = grade_all(list(graded), exercises, seed, jobs, args.timeout, ids, reports, graded)
        except IsolationRefused as e:
            print(f"\npython -m grader batch: stopped, no gradebook written. python -m grader: {e}", file=sys.stderr)
            return 3
        except SandboxLost as e:
            print(f"\npython -m grader batch: stopped, no gradebook written. {e}", file=sys.stderr)
            return 1
        for sub in subs:
            if sub.status:
                rows.append(absent_row(sub, ids, seed))
                if reports is not None:
                    hand_back(reports, sub.student, None, "", rows[-1])
        rows.sort(key=lambda r: r["student"])
        write_csv(args.csv, ["student", *ids, "total", "status", "error", "audit", "commit", "commit_time", "seed"],
                  rows)
        lines = summary(rows, {**{ex.id: ex.points for ex in exercises}, "total": sum(ex.points for ex in exercises)})
        write_csv(summary_file, SUMMARY_COLUMNS, lines)
        print(summary_text(lines, rows))
        if args.similarity:
            pairs = similar_pairs({sub.student: exercises_of(sub.graded) for sub in graded.values()}, exercises,
                                  *given_and_reference(exercises))
            write_csv(args.similarity, COLUMNS, pairs)
            print(f"{len(pairs)} pair{'s' * (len(pairs) != 1)} of near-identical submissions "
                  f"(similarity {THRESHOLD:g} or more): {args.similarity}")
    print(f"Wrote {args.csv}: {len(rows)} students, seed {seed}; the summary in {summary_file}" +
          (f"; their reports in {reports}/" if reports is not None else ""), file=sys.stderr)
    return 0


def write_csv(path, columns, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def given_and_reference(exercises):
    """({id: the stub's source}, {id: the reference's source}), from this repository."""
    from .exercises import REPO
    def text(folder, ex):
        path = REPO / folder / ex.filename
        return path.read_text() if path.is_file() else None
    return ({ex.id: text("exercises", ex) for ex in exercises}, {ex.id: text("solutions", ex) for ex in exercises})
