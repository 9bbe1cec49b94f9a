"""The fresh stub of an exercise, wherever it can be found, and its blank-file form.

The fresh stub comes from git: the newest committed version of exercises/NN_name.py with the
most `raise NotImplementedError` (a learner's own commits only remove them), so it works in a
student copy of the template where the learner commits their work. It is cached in
.grade/pristine/ for when git is not at hand.
"""
import ast
import os
import subprocess

from ..exercises import REPO
from . import state
from .errors import Problem


def todo_count(source):
    """How many `raise NotImplementedError` a file holds: a stub has them all."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return source.count("raise NotImplementedError")
    n = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id == "NotImplementedError":
                n += 1
    return n


def git_versions(relpath, limit=200, repo=None):
    """The committed versions of a file, newest first (empty without git)."""
    repo = repo or REPO
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "LC_ALL": "C"}
    try:
        log = subprocess.run(["git", "log", f"-n{limit}", "--format=%H", "--", relpath], cwd=repo, env=env,
                             capture_output=True, text=True, timeout=20)
        commits = log.stdout.split() if log.returncode == 0 else []
        if not commits:
            return []
        query = "".join(f"{c}:./{relpath}\n" for c in commits).encode()
        cat = subprocess.run(["git", "cat-file", "--batch"], cwd=repo, env=env, input=query,
                             capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    out, pos, versions = cat.stdout, 0, []
    while pos < len(out):
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) == 3 and header[1] == b"blob":
            size = int(header[2])
            versions.append(out[pos:pos + size])
            pos += size + 1
    return versions


def pristine_stub(ex):
    """The untouched stub of an exercise, as bytes; Problem if none can be found."""
    best, best_n = None, 0
    for content in git_versions(f"exercises/{ex.filename}"):
        n = todo_count(content.decode("utf-8", "replace"))
        if n > best_n:                    # newest first: keep the newest of the most-TODO versions
            best, best_n = content, n
    if best is not None:
        state.cache_stub(ex.filename, best)
        return best
    cached = state.cached_stub(ex.filename)
    if cached is not None:
        return cached
    raise Problem(f"cannot find a fresh stub for {ex.label}: exercises/{ex.filename} was never committed "
                  f"to git here (clone the course with git, or fetch that file again)")


def blank_of(stub):
    """The blank-file stub (grader/blank.py) derived from a narrated stub's bytes."""
    from ..blank import blank_stub
    try:
        return blank_stub(stub.decode("utf-8")).encode("utf-8")
    except (SyntaxError, ValueError, UnicodeDecodeError):
        return stub
