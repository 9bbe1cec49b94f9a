"""Studying alone: hints, watch mode, timed drills, progress, reset and the reference.

    python -m grader.study hint NN [--level N]   the next hint (make hint EX=NN)
    python -m grader.study watch [NN]            grade on every save (make watch)
    python -m grader.study drill NN              a timed drill from a blank stub (make drill EX=NN)
    python -m grader.study drill-done            end a drill, put your own file back (make drill-done)
    python -m grader.study progress              status, best score, drill times (make progress)
    python -m grader.study reset NN              back to the stub, keeping a backup (make reset EX=NN)
    python -m grader.study solution NN [--force] the reference, once earned (make solution EX=NN)

Every command first puts back a learner's file that a killed drill left aside, and carries the
grader's last results into the history.
"""
import argparse
import sys

from ..exercises import UnknownExercise, find, with_stubs
from . import state
from .drill import drill, drill_cap, drill_done, recover
from .errors import Problem, Usage
from .files import reset, solution
from .hints import hint
from .progress import progress
from .watch import watch


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise Usage(message)


def parse(argv):
    parser = Parser(prog="python -m grader.study", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    for name in ("hint", "watch", "drill", "reset", "solution"):
        p = sub.add_parser(name)
        p.add_argument("exercise", nargs="?", default="")
        if name == "hint":
            p.add_argument("--level", type=int, choices=(1, 2, 3))
        if name == "solution":
            p.add_argument("--force", action="store_true")
    sub.add_parser("drill-done")
    sub.add_parser("progress")
    sub.add_parser("recover")
    args = parser.parse_args(argv)
    if not args.command:
        raise Usage("give a command: hint, watch, drill, drill-done, progress, reset or solution")
    return args


def pick(word, command):
    """The exercise a command names (EX=NN); Usage if none or an unknown one."""
    if not word:
        raise Usage(f"which exercise? give EX=NN, e.g. make {command} EX=05")
    try:
        return find(word, with_stubs())
    except UnknownExercise as e:
        raise Usage(str(e)) from None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv and not argv[0].startswith("-") else "study"
    try:
        args = parse(argv)
        command = args.command
        if command in ("hint", "drill", "reset", "solution"):
            ex = pick(args.exercise, command)
        elif command == "watch":
            ex = pick(args.exercise, command) if args.exercise else None
        recover()
        state.fold_last()
        if command == "hint":
            return hint(ex, args.level)
        if command == "watch":
            return watch(ex)
        if command == "drill":
            return drill(ex, drill_cap())
        if command == "drill-done":
            return drill_done()
        if command == "progress":
            return progress()
        if command == "reset":
            return reset(ex)
        if command == "solution":
            return solution(ex, args.force)
        return 0                  # recover: done above
    except Usage as e:
        print(f"{command}: {e}", file=sys.stderr)
        return 2
    except Problem as e:
        print(f"{command}: {e}", file=sys.stderr)
        return 1
