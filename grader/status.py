"""The status words the grader and the study tools produce and compare.

Each is a `str` as well as an enum member, so a status compares equal to its word, is a dict key
for it, and goes into JSON, f-strings and str() as exactly that word: the JSON report's words are
a public contract (CONTRACT.md) and must never change. A status read back from JSON is a plain
string; `Status(word)` turns it into a member.
"""
from enum import Enum


class _Word(str, Enum):
    # Printed as its word, not as "Status.COMPLETE" (Python 3.11 prints mixed-in enums by name).
    def __str__(self):
        return self.value

    def __format__(self, spec):
        return format(self.value, spec)


class Status(_Word):
    """An exercise's status in the report (`exercises[].status`)."""
    COMPLETE = "complete"
    IN_PROGRESS = "in progress"
    NOT_STARTED = "not started"
    BROKEN = "broken"            # the file does not load
    FORBIDDEN = "forbidden"      # it uses a forbidden helper: 0 on the exercise
    MISSING = "missing"          # no file: not attempted


class TestStatus(_Word):
    """A hidden test's status in the report (`tests[].status`)."""
    __test__ = False             # not a pytest test class, whatever its name says
    PASSED = "passed"
    FAILED = "failed"
    NOT_CHECKED = "not checked"  # the code crashed, or a value came out wrong before this test's property


class Outcome(_Word):
    """How a drill, a mock interview or one of its parts ended (`outcome` in .grade/'s histories)."""
    FULL_MARKS = "full marks"
    TIMES_UP = "time's up"
    STOPPED = "stopped"          # Ctrl-C, SIGTERM or make drill-done
    INTERRUPTED = "interrupted"  # SIGHUP, or killed outright and put back by the next command
    FINISHED = "finished"        # an interview that no signal stopped, whatever its parts scored


class BatchStatus(_Word):
    """A student's row in the batch gradebook: first those with nothing graded, then the graded ones,
    whose worst wins: tampering > timeout > broken > ok."""
    MISSING = "missing"                  # on the roster, with no repository
    NOT_SUBMITTED = "not submitted"      # a repository with no commit (before the deadline)
    NOT_ATTEMPTED = "not attempted"      # graded: no exercise file, or only the stubs
    OK = "ok"
    BROKEN = "broken"
    TIMEOUT = "timeout"
    TAMPERING = "tampering"

    @property
    def rank(self):
        return list(BatchStatus).index(self)
