"""What `python -m grader batch` needs to run a course: the roster, each repository's commit at the
deadline, and the class's statistics.

A repository's history is read with git, but never with the repository's own git configuration
(which could name programs for git to run): its objects are borrowed, read-only, by a fresh empty
repository of ours, and the commit's tree is exported from there into a folder of our own, which is
what gets graded. The working tree is never graded, and nothing in it is followed.
"""
import csv
import io
import os
import re
import shutil
import statistics
import subprocess
import tarfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .status import BatchStatus

COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
ROSTER_COLUMNS = ("github_username", "identifier")     # GitHub Classroom's roster export, in that order


class CourseError(Exception):
    """Bad input for the batch (a roster, a deadline): the message names the problem."""


@dataclass
class Submission:
    student: str
    folder: Path = None         # the student's folder as given; None when the roster names no folder
    graded: Path = None         # what is graded: the folder, or its commit's tree exported
    commit: str = ""
    commit_time: str = ""
    status: str = ""            # when there is nothing to grade: missing, not submitted, broken
    note: str = ""              # said first in the row's error column

    def cells(self):
        return {"commit": self.commit, "commit_time": self.commit_time}


def parse_deadline(text):
    try:
        when = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)   # 3.10 wants no Z
    except ValueError:
        raise CourseError(f"--deadline {text!r} is not an ISO 8601 time, e.g. 2026-12-01T23:59:00+01:00") from None
    if when.tzinfo is None:
        raise CourseError(f"--deadline {text!r} has no time zone: add one, e.g. {text}+01:00 or {text}Z")
    return when


def utc(when):
    return when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def read_roster(path):
    """The students a roster names, in its order: one per line (blank lines and # comments skipped),
    or a CSV with a github_username or identifier column, as GitHub Classroom exports it (a student
    with no GitHub account linked yet is named by their identifier)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise CourseError(f"cannot read the roster {path}: {getattr(e, 'strerror', None) or e}") from None
    lines = [line.strip() for line in text.splitlines()]
    first = next((line for line in lines if line and not line.startswith("#")), "")
    if "," in first:
        reader = csv.DictReader(io.StringIO(text))
        header = {(f or "").strip().lower(): f for f in reader.fieldnames or []}
        if not any(c in header for c in ROSTER_COLUMNS):
            raise CourseError(f"the roster {path} is a CSV without a github_username or identifier column "
                              f"(its columns: {', '.join(reader.fieldnames or [])})")
        names = [next((r[header[c]].strip() for c in ROSTER_COLUMNS if c in header and (r[header[c]] or "").strip()),
                      "") for r in reader]
    else:
        names = [line for line in lines if not line.startswith("#")]
    seen = []
    for name in names:
        if name and name not in seen:
            seen.append(name)
    if not seen:
        raise CourseError(f"the roster {path} names no student")
    return seen


def match_roster(folders, roster):
    """Submissions for every student of the roster, in its order (None for a folder when there is
    none), then the folders that match no one. A folder is a student's when it is named after them,
    or after them behind a prefix, as `gh classroom clone` names repositories (ASSIGNMENT-username);
    case is ignored, as GitHub ignores it in user names; the longest name wins."""
    owner = {}
    for folder in folders:
        low = folder.name.lower()
        names = [n for n in roster if low == n.lower() or low.endswith("-" + n.lower())]
        if names:
            name = max(names, key=len)
            if name not in owner or folder.name.lower() == name.lower():
                owner[name] = folder
    subs = [Submission(name, owner.get(name)) for name in roster]
    claimed = set(owner.values())
    extra = [Submission(f.name, f, note="not on the roster") for f in folders if f not in claimed]
    return subs + extra


def prepare(sub, deadline, work):
    """Fills in what to grade: a folder's own files, or for a git repository the tree of its last
    commit (at or before the deadline, when there is one) exported to a folder under `work`."""
    if sub.folder is None:
        sub.status, sub.note = BatchStatus.MISSING, "no repository for this student"
        return sub
    dot_git = sub.folder / ".git"
    if not os.path.lexists(dot_git):
        sub.graded = sub.folder
        if deadline is not None:
            sub.note = "not a git repository: graded as it stands, with no deadline applied"
        return sub
    if dot_git.is_symlink() or not dot_git.is_dir():
        sub.status, sub.note = BatchStatus.BROKEN, ".git is not a folder (a link or a worktree's pointer): not followed"
        return sub
    try:
        history, borrowed = commits(dot_git, work)
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        sub.status, sub.note = BatchStatus.BROKEN, f"cannot read its git history: {e}"
        return sub
    if not history:
        sub.status, sub.note = BatchStatus.NOT_SUBMITTED, "the repository has no commit"
        return sub
    on_time = [c for c in history if deadline is None or c[1] <= deadline]
    late = [c for c in history if deadline is not None and c[1] > deadline]
    if not on_time:
        sub.status = BatchStatus.NOT_SUBMITTED
        sub.note = f"no commit at or before the deadline (the first: {utc(min(c[1] for c in late))})"
        return sub
    sha, when = history[0] if deadline is None else max(on_time, key=lambda c: c[1])    # git log starts at HEAD
    sub.commit, sub.commit_time = sha, utc(when)
    if late:
        sub.note = (f"{len(late)} commit{'s' * (len(late) > 1)} after the deadline not graded "
                    f"(the last: {utc(max(c[1] for c in late))})")
    try:
        sub.graded = export(borrowed, sha, work)
    except (OSError, subprocess.SubprocessError, tarfile.TarError) as e:
        sub.status, sub.note = BatchStatus.BROKEN, f"cannot export commit {sha[:12]}: {e}"
    return sub


def _git(args, borrowed, **kw):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(borrowed), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        return subprocess.run(["git", "--git-dir", str(borrowed), *args], env=env, check=True,
                              stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300,
                              **({"stdout": subprocess.PIPE} | kw))
    except subprocess.CalledProcessError as e:
        said = (e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr or "").strip()
        raise OSError(f"git {args[0]}: {said.splitlines()[-1] if said else f'exit {e.returncode}'}") from None


def _borrow(dot_git, work):
    """A fresh bare repository of ours that reads dot_git's objects (and its shallow list)."""
    borrowed = work / f"git-{sum(1 for _ in work.glob('git-*'))}"
    subprocess.run(["git", "init", "-q", "--bare", str(borrowed)], check=True, capture_output=True,
                   env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work),
                        "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull})
    (borrowed / "objects" / "info" / "alternates").write_text(str((dot_git / "objects").absolute()) + "\n")
    shallow = dot_git / "shallow"
    if shallow.is_file() and not shallow.is_symlink():
        (borrowed / "shallow").write_bytes(shallow.read_bytes())
    return borrowed


def head_commit(dot_git):
    """The commit HEAD names, read from the files (no git: nothing of the repository's is run);
    None for a repository without commits."""
    head = _small(dot_git / "HEAD").strip()
    if COMMIT.fullmatch(head):
        return head
    ref = head.removeprefix("ref: ")
    if ref == head or not re.fullmatch(r"refs/heads/[\w.+/-]+", ref) or ".." in ref:
        raise ValueError(f"HEAD is not a branch: {head[:80]!r}")
    loose = dot_git / ref
    if loose.is_file() and not loose.is_symlink():
        sha = _small(loose).strip()
    else:
        packed = dot_git / "packed-refs"
        lines = _small(packed).splitlines() if packed.is_file() and not packed.is_symlink() else []
        sha = next((line.split()[0] for line in lines if line.split()[1:] == [ref]), None)
        if sha is None:
            return None                 # an unborn branch: no commit yet
    if not COMMIT.fullmatch(sha):
        raise ValueError(f"{ref} does not name a commit")
    return sha


def _small(path, limit=1 << 20):
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        return f.read(limit).decode("utf-8", errors="replace")


def commits(dot_git, work):
    """([(sha, committer time)] of every commit HEAD reaches, the repository that reads them)."""
    head = head_commit(dot_git)
    if head is None:
        return [], None
    borrowed = _borrow(dot_git, work)
    out = _git(["log", "--no-show-signature", "--format=%H %ct", head], borrowed, text=True).stdout
    return [(sha, datetime.fromtimestamp(int(t), timezone.utc))
            for sha, t in (line.split() for line in out.splitlines())], borrowed


def export(borrowed, sha, work):
    """The commit's tree, written to a fresh folder under work."""
    dest = work / f"tree-{borrowed.name[4:]}"
    dest.mkdir()
    archive = work / f"{dest.name}.tar"
    with open(archive, "wb") as f:
        _git(["archive", "--format=tar", sha], borrowed, stdout=f)
    extract(archive, dest)
    archive.unlink()
    return dest


def extract(archive, dest):
    """git's archive of a tree, written under dest and nowhere else: folders and regular files as
    they are; symbolic links made last, as links (never written through or followed here, so the
    grader sees them and refuses them with its reason); names that would leave dest refused."""
    links = []
    with tarfile.open(archive) as tar:
        for member in tar:
            name = os.path.normpath(member.name)
            if os.path.isabs(name) or name == ".." or name.startswith("../"):
                raise tarfile.TarError(f"a path outside the tree: {member.name!r}")
            target = dest / name
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isreg():
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(target, "xb") as out:
                    shutil.copyfileobj(src, out)
            elif member.issym():
                links.append((target, member.linkname))
    for target, pointing in links:          # a tree never holds a link and files below the same name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(pointing, target)


# -- the summary -------------------------------------------------------------------------------
BUCKETS = ("0", "<25%", "25-<50%", "50-<75%", "75-<100%", "100%")
SUMMARY_COLUMNS = ["item", "n", "mean", "median", "min", "max", "max_score", *BUCKETS]
UNGRADED = (BatchStatus.MISSING, BatchStatus.NOT_SUBMITTED)


def bucket(score, top):
    if score <= 0:
        return "0"
    if score >= top:
        return "100%"
    return BUCKETS[1 + min(3, int(4 * score / top))]


def summary(rows, columns):
    """One line per column ({id: max score}, the total included): the statistics of the rows that
    were graded (missing and not submitted students, and rows with no score, left out)."""
    graded = [r for r in rows if r["status"] not in UNGRADED and r.get("total") not in ("", None)]
    out = []
    for item, top in columns.items():
        scores = [float(r[item]) for r in graded]
        line = {"item": item, "n": len(scores), "max_score": f"{top:g}", **{b: 0 for b in BUCKETS}}
        if scores:
            line.update(mean=f"{statistics.mean(scores):.2f}", median=f"{statistics.median(scores):g}",
                        min=f"{min(scores):g}", max=f"{max(scores):g}")
        for s in scores:
            line[bucket(s, top)] += 1
        out.append(line)
    return out


def summary_text(lines, rows):
    counts = {}
    for r in rows:
        counts[str(r["status"])] = counts.get(str(r["status"]), 0) + 1
    width = max(len(str(line["item"])) for line in lines)
    head = f"{'':<{width}}  {'n':>3}  {'mean':>6}  {'median':>6}  {'min':>6}  {'max':>6}   " + \
        "  ".join(f"{b:>8}" for b in BUCKETS)
    order = [str(s) for s in BatchStatus]          # nothing graded first, then the worst last
    said = sorted(counts.items(), key=lambda c: order.index(c[0]) if c[0] in order else len(order))
    text = [f"{len(rows)} students: " + ", ".join(f"{n} {s}" for s, n in said), head]
    for line in lines:
        text.append(f"{line['item']:<{width}}  {line['n']:>3}  " + "  ".join(
            f"{line.get(k, '-'):>6}" for k in ("mean", "median", "min", "max")) + "   "
            + "  ".join(f"{line[b]:>8}" for b in BUCKETS))
    return "\n".join(text)
