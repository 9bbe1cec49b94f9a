"""Every mutant loses points and, where its mistake is catalogued, is named; every alternative
earns full marks, on a fresh seed each run (replay one with GRADER_TESTS_SEED=N)."""
import pytest

from helpers import RUN_SEED
from mutation import ALTERNATIVES, MUTANTS, first_hint_speaks_to, run, variants

SEED = RUN_SEED
MUTANT_FILES = variants(MUTANTS)
ALTERNATIVE_FILES = variants(ALTERNATIVES)


@pytest.fixture(scope="module")
def outcomes():
    """Mutants and alternatives, graded together in one batch."""
    return {o.variant.path: o for o in run(MUTANT_FILES + ALTERNATIVE_FILES, [SEED])}


@pytest.fixture(scope="module")
def mutant_outcomes(outcomes):
    return {v.path.name: outcomes[v.path] for v in MUTANT_FILES}


@pytest.fixture(scope="module")
def alternative_outcomes(outcomes):
    return {v.path.name: outcomes[v.path] for v in ALTERNATIVE_FILES}


@pytest.mark.parametrize("mutant", MUTANT_FILES, ids=lambda v: v.path.stem)
def test_mutant_is_caught_and_named(mutant, mutant_outcomes):
    o = mutant_outcomes[mutant.path.name]
    assert o.score < 10, f"seed {SEED}: {mutant.path.name} earned full marks"
    if mutant.mistake:
        assert o.named, f"seed {SEED}: {mutant.path.name} not named as '{mutant.mistake}'; said: {o.diagnosis}"


@pytest.mark.parametrize("mutant", [v for v in MUTANT_FILES if v.mistake], ids=lambda v: v.path.stem)
def test_first_hint_speaks_to_the_named_mistake(mutant, mutant_outcomes):
    """Replays the grade of every catalogued mutant: the first `make hint` after it is the section for its key."""
    o = mutant_outcomes[mutant.path.name]
    assert first_hint_speaks_to(o), \
        f"seed {SEED}: the first hint after {mutant.path.name} is not the one for `{mutant.mistake}` " \
        f"(the grade named first: {o.first_mistake})"


@pytest.mark.parametrize("alternative", ALTERNATIVE_FILES, ids=lambda v: v.path.stem)
def test_alternative_earns_full_marks(alternative, alternative_outcomes):
    o = alternative_outcomes[alternative.path.name]
    assert o.score == 10, f"seed {SEED}: {alternative.path.name} scored {o.score}: {o.diagnosis}"


def test_mutants_cover_every_exercise_and_every_catalogued_row():
    per_exercise = {}
    for v in MUTANT_FILES:
        per_exercise.setdefault(v.id, []).append(v)
    from helpers import IDS
    thin = [i for i in IDS if len(per_exercise.get(i, [])) < 2]
    assert not thin, f"exercises with fewer than 2 mutants: {thin}"
    assert {v.id for v in ALTERNATIVE_FILES} >= set(IDS), "every exercise needs an alternative solution"
