"""Studying alone: hints, watch mode, timed drills, progress, reset and the reference.

    cli.py       python -m grader.study COMMAND: the arguments, and one line per error
    state.py     everything kept in .grade/ (the only code that touches it; the grader uses it too)
    stubs.py     the fresh stub of an exercise (from git, else its cache) and its blank-file form
    grading.py   the screen, one grade of a save, the clock (watch, drill and the interview)
    drill.py     timed drills: the learner's file aside and back, whatever ends the drill
    watch.py     grading on every save
    hints.py     the next hint, speaking to the last grade's failure first
    progress.py  the progress table
    files.py     reset to the stub, and the reference once earned

This package imports no torch: the grading itself runs `python -m grader` in a child process,
and the grader imports `grader.study.state`, so what this file imports stays standard library.
"""
# tests/mutation.py asks the hint matching, by these names, which hint a known mistake gets.
from .hints import parse_hints, targeted, triggers

__all__ = ["parse_hints", "targeted", "triggers"]
