"""python -m grader [NN ...] [--path DIR] [--json FILE] [--seed N]  (python -m grader batch: grader/batch.py)"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from . import report
from .safe_text import capped, one_line
from .exercises import REPO, UnknownExercise, select as exercises_named


class Usage(Exception):
    pass


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m grader",
                                     description="Grade the attention exercises with hidden tests.")
    parser.add_argument("exercises", nargs="*", metavar="NN", help="exercise numbers to grade (default: all)")
    parser.add_argument("--path", default="exercises", help="folder holding the NN_*.py files (default: exercises)")
    parser.add_argument("--seed", type=int, help="fix the random inputs (default: a fresh seed, printed; with "
                        "--classroom or --gradescope, the course's seed from grader/course.cfg)")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    parser.add_argument("--device", default="cpu", help="device the submission's inputs live on (default: cpu)")
    parser.add_argument("--all-failures", action="store_true", help="show every failing check, not the first few")
    parser.add_argument("--classroom", action="store_true",
                        help="GitHub Classroom: write result=<base64 JSON> to $GITHUB_OUTPUT (else print it); exit 0")
    parser.add_argument("--gradescope", metavar="FILE", help="also write Gradescope's results.json")
    parser.add_argument("--junit", metavar="FILE", help="also write the report as JUnit XML")
    parser.add_argument("--narrate", action="store_true",
                        help="also check the shape comments in your code against the real shapes (no points; "
                             "drills and interviews score it)")
    parser.add_argument("--require-isolation", action="store_true",
                        help="refuse to grade unless the sandbox has the course minimum of isolation "
                             "(implied by --classroom, --gradescope and batch)")
    parser.add_argument("--allow-weak-isolation", action="store_true",
                        help="grade even where the sandbox lacks the course minimum (also "
                             "GRADER_ALLOW_WEAK_ISOLATION=1); the report says which layers were active")
    parser.add_argument("--audit", metavar="REPO",
                        help="compare REPO's grader/ and .github/ with the course template; the findings "
                             "go in the JSON report and, with --classroom, in the 'audit' runner")
    parser.add_argument("--audit-note", metavar="TEXT", action="append", default=[],
                        help="add TEXT to the audit's findings (the workflow says which grader graded)")
    return parser.parse_args(argv)


def bound_the_grader():
    """The grader's own process is bounded too: memory (on the CPU), CPU seconds, and no other
    process of its uid may read its memory or environment (Linux: not dumpable)."""
    import resource
    try:
        import ctypes
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)            # PR_SET_DUMPABLE 0
    except Exception:
        pass
    cpu = int(os.environ.get("GRADER_CPU_SECONDS", "1800"))
    memory = int(os.environ.get("GRADER_SELF_MEMORY_MB", "12288")) << 20
    for which, value in ((resource.RLIMIT_CPU, cpu), (resource.RLIMIT_AS, memory)):
        try:
            soft, hard = resource.getrlimit(which)
            if soft == resource.RLIM_INFINITY or soft > value:
                resource.setrlimit(which, (value, hard))
        except (ValueError, OSError):
            pass


def _folder(directory):
    """(whether `directory` is a folder, why its path is refused or None): a symbolic link in any
    component of the path is refused (grader/paths.py)."""
    from . import paths
    try:
        os.close(paths.open_folder(directory, listing=False))
    except paths.Refused as e:
        return True, str(e)
    except OSError:
        return False, None
    return True, None


def _repository_of(directory, audited):
    """The submission, for its links: the audited repository (Classroom's student checkout) when
    the folder graded lies in it, else the folder itself. Lexical: any link is refused anyway."""
    if audited:
        repo, graded = os.path.abspath(audited), os.path.abspath(directory)
        if os.path.commonpath([repo, graded]) == repo:
            return repo
    return None


def stop_workflow_commands():
    """--classroom: GitHub Actions reads no line of this run as a workflow command. The runner
    skips every command between `::stop-commands::TOKEN` and `::TOKEN::`; the token is fresh and
    random, so nothing a submission writes can end the block early. stderr joins stdout, so the
    runner sees every line in the order written, inside the block (the runner's state is per step,
    so a run killed before the end leaves no later step affected). Returns what ends the block."""
    import secrets
    token = secrets.token_hex(16)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(1, 2)
    print(f"::stop-commands::{token}", flush=True)
    mine, done = os.getpid(), []

    def resume():
        if os.getpid() == mine and not done:    # never from a forked worker, and once
            done.append(True)
            sys.stderr.flush()
            print(f"::{token}::", flush=True)
    return resume


def device_problem(name):
    """Why the submission's inputs cannot live on device `name` here, or "" if they can."""
    import torch
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        return "not a device torch knows (cpu, cuda, cuda:1, mps, ...)"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return "this machine has no CUDA GPU that torch can use (torch.cuda.is_available() is False)"
        if device.index is not None and device.index >= torch.cuda.device_count():
            return f"this machine has {torch.cuda.device_count()} CUDA GPU(s), so no cuda:{device.index}"
    if device.type == "mps" and not torch.backends.mps.is_available():
        return "this machine has no Apple GPU that torch can use (torch.backends.mps.is_available() is False)"
    return ""


def select(wanted):
    try:
        return exercises_named(wanted)
    except UnknownExercise as e:
        raise Usage(str(e)) from None


def main(argv=None, zygote=None):
    """python -m grader; `zygote`: a warm zygote's fresh channels to grade with (grader/warm.py)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["batch"]:
        from .batch import main as batch
        return batch(argv[1:])
    try:
        args = parse(argv)
    except SystemExit as e:
        return 2 if e.code else 0
    if not args.classroom:
        return grade(args, zygote)
    resume = stop_workflow_commands()
    try:
        return grade(args, zygote)
    except Exception:
        import traceback
        traceback.print_exc()       # inside the block: an error's text may quote a submission
        return 1
    finally:
        resume()


def grade(args, zygote=None):
    try:
        exercises = select(args.exercises)
        directory = Path(args.path)
        present, linked = _folder(directory)
        if linked:      # graded all the same: every exercise 0, its report saying why
            print(f"python -m grader: not graded: {linked}", file=sys.stderr)
        if not present:
            if not args.classroom:
                raise Usage(f"no such folder: {args.path}")
            # Classroom records a grade whatever happened: every exercise 0, with the reason.
            print(f"python -m grader: no such folder: {one_line(args.path)}; every exercise is graded as missing",
                  file=sys.stderr)
            directory = Path(tempfile.mkdtemp(prefix="grader-empty-"))
        from .seeds import BadConfig, default_seed
        try:       # a course grade uses the course's seed (grader/course.cfg), a practice grade a fresh one
            seed = args.seed if args.seed is not None else default_seed(args.classroom or bool(args.gradescope))
        except BadConfig as e:
            raise Usage(str(e)) from None
    except Usage as e:
        print(f"python -m grader: {e}", file=sys.stderr)
        return 2
    started = time.monotonic()
    course = args.classroom or bool(args.gradescope) or args.require_isolation
    weak_ok = args.allow_weak_isolation or os.environ.get("GRADER_ALLOW_WEAK_ISOLATION") == "1"

    from .sandbox.zygote import Zygote
    if args.device == "meta":
        # Meta tensors hold no values, and a grade compares values: the values are graded on the CPU, and the
        # device tests (01 04 08 12 13 14), which every grade runs, call the code on the meta device.
        print("python -m grader: --device meta: values are graded on the CPU; the device tests call your code on "
              "the meta device, as in every grade.", file=sys.stderr)
        args.device, on_meta = "cpu", True
    else:
        on_meta = False
    if args.device == "cpu":
        bound_the_grader()
    else:
        problem = device_problem(args.device)
        if problem:
            print(f"python -m grader: --device {args.device}: {problem}. Nothing was graded; your files are not "
                  "at fault. Leave --device out to grade on the CPU.", file=sys.stderr)
            return 2
    jobs = min(len(exercises), int(os.environ.get("GRADER_JOBS", min(2, os.cpu_count() or 1))))
    if zygote is None or args.device != "cpu":
        from .exercises import checks_devices
        # imports torch (and, for tests on the meta device, its kernels) while this process does the same
        zygote = Zygote(max(jobs, 1), args.device, meta=checks_devices(exercises))
    own = not linked and directory.resolve() == (REPO / "exercises").resolve()
    if own:
        from .study.drill import recover
        recover()           # a drill killed outright left a fresh stub in place of the learner's file
    from . import session   # imports torch: after the arguments are known to be good
    from .sandbox import IsolationError, course_minimum
    require = course_minimum(os.geteuid() == 0) if course and not weak_ok else ()
    try:
        results = session.run(exercises, directory, seed, args.device, zygote, require, args.narrate,
                              root=_repository_of(directory, args.audit))
    except IsolationError as e:
        print(f"python -m grader: {e}", file=sys.stderr)
        return 3
    finally:
        zygote.close()
    chosen = "".join(ex.id + " " for ex in exercises) if args.exercises else ""
    print(report.render(results, seed, args.path.rstrip("/"), chosen,
                        max_failures=99 if len(exercises) == 1 or args.all_failures else 3))
    findings = None
    if args.audit or args.audit_note:
        from .history import history_findings
        from .paths import Refused
        from .template import audit
        try:
            found = audit(args.audit) + history_findings(args.audit) if args.audit else []
        except (Refused, OSError) as e:     # a link in the repository's own path: nothing is read
            found = [f"not audited: {e}"]
        findings = capped([one_line(f) for f in args.audit_note + found])
        for f in findings:
            print(f"audit: {one_line(args.audit or '')} differs from the course template: {f}", file=sys.stderr)
    if args.json:
        report.write_json(results, seed, args.json, audit=findings)
    if args.classroom or args.gradescope or args.junit:
        from . import formats
        data = report.to_json(results, seed)
        if findings is not None:
            data["audit"] = findings
        for ex, r in zip(data["exercises"], results):      # JUnit and Gradescope report real times
            for t, result in zip(ex["tests"], r.tests):
                t["time"] = result.seconds
        if args.classroom:
            formats.write_classroom(data)
        if args.gradescope:
            formats.write_gradescope(data, args.gradescope, execution_time=time.monotonic() - started)
        if args.junit:
            formats.write_junit(data, args.junit)
    if own and args.device == "cpu" and not on_meta:
        # a run on another device is a check of the code, not a step of the learner's history
        from .study import state
        state.remember(report.to_json(results, seed)["exercises"], seed)     # for hints, progress, watch
        state.fold_last()   # best scores and completions are recorded at grade time, not at the next study command
    return 0 if args.classroom or all(r.score == r.max_score for r in results) else 1


if __name__ == "__main__":
    code = main()
    # Every report is written and closed by now; the interpreter's own teardown (torch's modules,
    # a quarter of a second) would only delay the prompt.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if type(code) is int else 1)
