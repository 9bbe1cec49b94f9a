"""Runs the real grader the way a learner does, and reads its JSON report.

Each grade is `python -m grader`'s own entry point, main(), in a fresh process: a fork of a warm
server that has already imported torch, numpy and pytest (multiprocessing's forkserver), with the
arguments, folder and environment given. It saves a grade the seconds of importing torch again
and nothing else: the grader's modules are imported in the child, after its environment is set,
and the sandbox starts as in any run. Tests of the process itself (the cheats, course modes,
batch) run `python -m grader` as a subprocess.
"""
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grader.exercises import all_exercises  # noqa: E402

EXERCISES = all_exercises()
# One random seed for a whole `make test` run, beside the fixed ones, carried by the environment to
# every pytest-xdist worker (conftest.py imports this first); GRADER_TESTS_SEED=N replays a run.
RUN_SEED = int(os.environ.setdefault("GRADER_TESTS_SEED", str(random.SystemRandom().randrange(3, 10**6))))
IDS = [ex.id for ex in EXERCISES]
WARM = ("torch", "numpy", "pytest")      # what every grade imports before it grades
_server = None


def _warm_server():
    global _server
    if _server is None:
        _server = multiprocessing.get_context("forkserver")
        _server.set_forkserver_preload(list(WARM))
    return _server


def _grader_main(argv, env, logs):
    """In the forked child: be `python -m grader ARGV` run in the repository with `env`, its
    stdout and stderr going to the two files `logs`."""
    os.chdir(REPO)
    os.environ.clear()
    os.environ.update(env)
    for fd, log in zip((1, 2), logs):
        os.dup2(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)            # as Python sets them up
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1)
    sys.argv = [str(REPO / "grader" / "__main__.py"), *argv]
    code = 1                  # what Python exits with after an uncaught exception
    try:
        from grader.__main__ import main
        code = main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        import traceback
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run_grader(argv, env=None, timeout=600):
    """(exit code, stdout then stderr) of `python -m grader ARGV` run in the repository, in a warm
    fork; env replaces os.environ."""
    with tempfile.TemporaryDirectory(prefix="grade-log-") as tmp:
        logs = [Path(tmp) / "stdout.txt", Path(tmp) / "stderr.txt"]
        child = _warm_server().Process(target=_grader_main, args=(list(argv), dict(env or os.environ),
                                                                  [str(log) for log in logs]))
        child.start()
        child.join(timeout)
        if child.exitcode is None:
            child.kill()
            child.join()
            raise subprocess.TimeoutExpired(["python", "-m", "grader", *argv], timeout)
        return child.exitcode, "".join(log.read_text(errors="replace") for log in logs if log.exists())


def grade(path, *ids, seed=1, env=None, timeout=600, extra=()):
    """Runs `python -m grader` on `path`; returns (exit code, JSON report, printed text)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        code, text = run_grader(
            [*ids, "--path", str(path), "--seed", str(seed), "--json", str(out), *extra],
            env={**os.environ, "NO_COLOR": "1", **(env or {})}, timeout=timeout)
        report = json.loads(out.read_text()) if out.exists() else None
    return code, report, text


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
