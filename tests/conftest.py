import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Imported here, before pytest-xdist starts its workers, so that the run's random seed (RUN_SEED)
# is drawn once and they all inherit it: each collects the tests again and must name them alike.
import helpers  # noqa: E402,F401

# `make test-fast` (pytest -m fast): the in-process unit tests, no grader run, no terminal, in
# seconds. A module of them says `pytestmark = pytest.mark.fast`; in a module that also grades,
# its in-process tests are named here by prefix (("*",) takes every test but those in SLOW).
FAST = {
    "test_guards": ("*",),
    "test_readings": ("*",),
    "test_quiz": ("*",),
    "test_narration": ("*",),
    "test_isolation": ("test_wire_", "test_read_source_"),
    "test_interview": ("test_bands", "test_named_mistakes", "test_scorecard", "test_progress_columns"),
    "test_classroom": ("test_exact_sums", "test_every_exercise_weighs", "test_each_exercise_is_split",
                       "test_fallback_needs_no_torch"),
    "test_blank": ("test_blank_stub_is_the_contract", "test_every_narrated_stub"),
    "test_reference_and_stubs": ("test_every_exercise_has_a_stub",),
    "test_course_tools": ("test_batch_cuts",),
    "test_gradebook": ("test_roster_formats", "test_similarity_ignores", "test_a_repository_is_read",
                       "test_without_a_deadline"),
    "test_mutants": ("test_mutants_cover",),
    "test_cheats": ("test_every_cheat_says",),
    "test_links": ("test_a_link_in_any", "test_only_a_link", "test_names_and", "test_the_audit_"),
    "test_study": ("test_every_exercise_has_hints", "test_hint_triggers"),
}
SLOW = ("test_make_quiz_", "test_the_tracer_imports", "test_the_grader_reports")   # a terminal or a grader run


# Grades several test modules read: each is graded once per session, whichever module asks first.
@pytest.fixture(scope="session")
def reference_grade():
    """The reference, every exercise, seed 1: (exit code, JSON report, printed text)."""
    from helpers import REPO, grade
    return grade(REPO / "solutions", seed=1)


@pytest.fixture(scope="session")
def stub_grade():
    """The stubs as shipped in exercises/, every exercise, seed 7: (exit code, JSON report, printed text)."""
    from helpers import REPO, grade
    return grade(REPO / "exercises", seed=7)


def pytest_collection_modifyitems(items):
    for item in items:
        prefixes = FAST.get(getattr(item.module, "__name__", ""), ())
        name = item.originalname or item.name
        if name.startswith(SLOW):
            continue
        if "*" in prefixes or name.startswith(tuple(p for p in prefixes if p != "*")):
            item.add_marker(pytest.mark.fast)
