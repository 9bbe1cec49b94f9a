"""The audit of a student repository's history: grader/ and .github/ in every commit, not only the last.

A student who edits the workflow or the grader in one commit (a push grades with the edit) and
undoes it later leaves a final tree that matches the template; the commits still show it. Every
blob any commit put under grader/ or .github/ (the root commit included, merges against each
parent) must be one the course template holds at that path. `.github/.keep`, which GitHub
Classroom's own bot commits for feedback pull requests, is allowed. Git runs with no system or
global config, no hooks, no pager, no external diff and no replace refs, so nothing the
repository holds is run or substituted. A shallow clone, or no git at all, is said, not passed.
Standard library only.
"""
import hashlib
import os
import subprocess
from pathlib import Path

from .exercises import REPO

TOPS = ("grader", ".github")
PLATFORM_FILES = {".github/.keep"}        # what GitHub Classroom itself commits
FILE_MODES = {"100644", "100755"}
MAX_PATHS = 20                            # findings listed; the rest are counted


def _git(repo, *args):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": os.devnull, "HOME": os.devnull, "GIT_NO_REPLACE_OBJECTS": "1",
           "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    cmd = ["git", "--no-pager", "-c", "safe.directory=*", "-c", "core.fsmonitor=false",
           "-c", f"core.hooksPath={os.devnull}", "-c", "log.showSignature=false", "-C", str(repo), *args]
    proc = subprocess.run(cmd, capture_output=True, env=env, timeout=120)
    if proc.returncode:
        raise RuntimeError(proc.stderr.decode(errors="replace").strip()[:300] or f"git exit {proc.returncode}")
    return proc.stdout.decode(errors="replace")


def template_blobs(object_format="sha1", root=REPO):
    """{path: {blob ids}} of both variants of the template (public tests or self-study)."""
    from .template import GUARDED, files
    make = hashlib.sha256 if object_format == "sha256" else hashlib.sha1
    allowed = {}
    for self_study in (False, True):
        for rel, data in files(root, self_study).items():
            if rel.startswith(GUARDED):
                allowed.setdefault(rel, set()).add(make(b"blob %d\0" % len(data) + data).hexdigest())
    return allowed


def history_findings(repo, root=REPO):
    """One line per path under grader/ or .github/ that some commit made differ from the template."""
    repo = Path(repo)
    if not (repo / ".git").exists():
        return ["history not audited: no git history here (the workflow checks out with fetch-depth: 0)"]
    try:
        if _git(repo, "rev-parse", "--is-shallow-repository").strip() == "true":
            return ["history not audited: a shallow clone (the workflow checks out with fetch-depth: 0)"]
        fmt = _git(repo, "rev-parse", "--show-object-format").strip() or "sha1"
        log = _git(repo, "log", "--root", "-m", "--raw", "--no-abbrev", "--no-renames", "--no-ext-diff",
                   "--no-textconv", "--format=%x00%H", "HEAD", "--", *TOPS)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        return [f"history not audited: git could not read it ({e})"]
    allowed = template_blobs(fmt, root)
    seen = {}                             # path -> [short commit, ...], newest first
    commit = "?"
    for line in log.split("\n"):
        if line.startswith("\0"):
            commit = line[1:].strip()[:12]
            continue
        if not line.startswith(":"):
            continue
        meta, _, path = line.partition("\t")
        _, new_mode, _, new_blob, status = meta[1:].split()[:5]
        if path in PLATFORM_FILES or not path.startswith(tuple(t + "/" for t in TOPS)):
            continue
        if status.startswith("D"):
            bad = path in allowed
        else:
            bad = new_mode not in FILE_MODES or new_blob not in allowed.get(path, ())
        if bad and commit not in seen.setdefault(path, []):
            seen[path].append(commit)
    findings = []
    for path, commits in sorted(seen.items()):
        if commits:
            first = commits[-1]
            findings.append(f"history: {path} differs from the course template in commit {first}"
                            + (f" and {len(commits) - 1} more" if len(commits) > 1 else ""))
    if len(findings) > MAX_PATHS:
        findings = findings[:MAX_PATHS] + [f"history: ... and {len(findings) - MAX_PATHS} more paths"]
    return findings
