"""The reference earns full marks on every exercise; every stub earns zero on every test."""

import pytest

from helpers import EXERCISES, IDS, REPO, RUN_SEED, by_id, grade

SEEDS = [1, 2, RUN_SEED]


@pytest.mark.parametrize("seed", SEEDS)
def test_reference_earns_full_marks(seed, request):
    shared = seed == 1          # seed 1 is graded once for every module that reads the reference's grade
    code, report, text = request.getfixturevalue("reference_grade") if shared else grade(REPO / "solutions", seed=seed)
    failing = [f"{ex['id']} {t['name']}: {t['message']}" for ex in report["exercises"]
               for t in ex["tests"] if not t["passed"]]
    assert not failing, f"seed {seed}:\n" + "\n".join(failing)
    assert code == 0
    assert report["score"] == report["max_score"] == 10.0 * len(IDS)
    assert all(ex["status"] == "complete" for ex in report["exercises"])


def test_every_stub_fails_every_single_test(stub_grade):
    code, report, text = stub_grade
    assert code == 1
    assert report["score"] == 0
    for ex in report["exercises"]:
        assert ex["status"] == "not started", (ex["id"], ex["status"], ex["error"])
        passing = [t["name"] for t in ex["tests"] if t["passed"]]
        assert not passing, f"exercise {ex['id']}: these tests pass on the stub: {passing}"
    assert "Next: Start exercises/01_" in text


@pytest.mark.parametrize("exercise", EXERCISES, ids=IDS)
def test_every_exercise_has_a_stub_and_a_reference(exercise):
    stub = (REPO / "exercises" / exercise.filename).read_text()
    reference = (REPO / "solutions" / exercise.filename).read_text()
    assert "raise NotImplementedError" in stub and "TODO" in stub
    assert "NotImplementedError" not in reference
    for other in ("solutions", "grader", "exercises"):
        for text in (stub, reference):
            assert f"import {other}" not in text and f"from {other}" not in text


def test_stub_report_reads_not_started_without_tracebacks(stub_grade):
    code, report, text = stub_grade
    row05 = next(line for line in text.splitlines() if line.startswith("  05 softmax "))
    assert "not started" in row05
    assert "Traceback" not in text
    assert by_id(report)["05"]["score"] == 0


def test_every_exercise_checks_several_categories_including_rules(stub_grade):
    code, report, text = stub_grade
    for ex in report["exercises"]:
        categories = {t["category"] for t in ex["tests"]}
        assert "rules" in categories and "equivalence" in categories and len(categories) >= 4, (ex["id"], categories)
        assert sum(t["max_score"] for t in ex["tests"]) == pytest.approx(10, abs=0.01)
