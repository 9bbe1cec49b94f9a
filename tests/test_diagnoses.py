"""Feedback that never misleads: near-miss mistakes are named rightly or described without a wrong name,
the first hint after them speaks to what was seen, and no message contradicts itself.

The near misses are mutants (tests/mutants/), each the slip of a learner that the grader once named as a
neighbouring mistake: graded in one batch per seed, every key a report names must be the mutant's own.
"""
import json
import time

import pytest
import torch

from helpers import RUN_SEED
from mutation import MUTANTS, run, variants

from grader.attention_errors import Attending, attention_with_key_weights
from grader.checks import Fail, close
from grader.exercises import find
from grader.study import hints, state

# mutant -> the only keys its report may name (empty: described, never named)
NEAR_MISSES = {
    "09_scaled_dot_product_attention__float64_downcast.patch": {"computed_in_float32"},
    "11_grouped_query_attention__float64_downcast.patch": {"computed_in_float32"},
    "14_flash_attention__skip_one_block_early.patch": {"causal_skip_one_block_early"},
    "14_flash_attention__tile_relative_mask.patch": {"crossing_tiles_unmasked"},
    "03_scores__permute_assumes_4d.patch": {"permute_assumes_4d"},
    "05_softmax__no_keepdim.patch": set(),
    "14_flash_attention__python_loop.patch": set(),
    "13_kv_cache__length_bumped_early.patch": set(),
}
SEEDS = [RUN_SEED, RUN_SEED + 1]
SLOW = "14_flash_attention__python_loop.patch"      # it must time out: graded on the first seed only
CASES = [(m, s) for s in SEEDS for m in sorted(NEAR_MISSES) if m != SLOW or s == SEEDS[0]]


@pytest.fixture(scope="module")
def graded():
    """{(mutant file, seed): its exercise's part of the JSON report}, every near miss in one batch a seed."""
    chosen = [v for v in variants(MUTANTS) if v.path.name in NEAR_MISSES]
    assert {v.path.name for v in chosen} == set(NEAR_MISSES), "a near-miss mutant is missing from tests/mutants/"
    # The pure-Python loop must time out; 4 s a call instead of 10 finds it sooner (the others take < 1 s).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADER_TIMEOUT", "4")
        outcomes = run(chosen, SEEDS[:1]) + run([v for v in chosen if v.path.name != SLOW], SEEDS[1:])
    return {(o.variant.path.name, o.seed): o.entry for o in outcomes}


@pytest.mark.parametrize("mutant, seed", CASES)
def test_a_near_miss_is_never_named_as_a_neighbouring_mistake(mutant, seed, graded):
    entry = graded[(mutant, seed)]
    failing = [t for t in entry["tests"] if not t["passed"]]
    assert failing, f"seed {seed}: {mutant} lost no points"
    named = {t["mistake"] for t in failing if t.get("mistake")}
    wrong = named - NEAR_MISSES[mutant]
    assert not wrong, f"seed {seed}: {mutant} was named {sorted(wrong)}, a mistake it does not make: " + \
        " | ".join(t["message"].splitlines()[0][:160] for t in failing if t.get("mistake") in wrong)
    if NEAR_MISSES[mutant]:
        assert named, f"seed {seed}: {mutant} was not named {sorted(NEAR_MISSES[mutant])}"


@pytest.mark.parametrize("seed", SEEDS)
def test_a_test_that_expects_an_exception_never_gives_it_as_why_it_was_not_checked(seed, graded):
    """13 with the length bumped before the overflow check: the refusal test fails on what it checks."""
    entry = graded[("13_kv_cache__length_bumped_early.patch", seed)]
    refusal = next(t for t in entry["tests"] if t["name"] == "test_overflow_is_refused")
    assert refusal["status"] == "failed", refusal
    assert "len(cache)" in refusal["message"] and "raised ValueError" not in refusal["message"], refusal["message"]


def first_hint(entry, ex_id, tmp_path, monkeypatch, capsys, times=1):
    """What `make hint EX=NN` prints after a grade that reported `entry` (hints' state in tmp_path)."""
    monkeypatch.setattr(state, "LAST", tmp_path / "last.json")
    monkeypatch.setattr(state, "HINT_STATE", tmp_path / "hints.json")
    state.save_json(state.LAST, {ex_id: dict(entry, time=time.time() + 3600)})
    said = []
    for _ in range(times):
        hints.hint(find(ex_id))
        said.append(capsys.readouterr().out)
    return said if times > 1 else said[0]


def section(ex_id, trigger):
    """The text of the `## when:` section that names `trigger`."""
    ex = find(ex_id)
    _, whens = hints.parse_hints(ex.hints.read_text())
    return next(text for key, text in whens if trigger in hints.triggers(key))


def also_failed_on(out, spoken):
    line = next((x for x in out.splitlines() if x.startswith("It also failed on: ")), "")
    items = line.removeprefix("It also failed on: ").rstrip(".").split("; ") if line else []
    assert len(items) == len(set(items)), f"'It also failed on' repeats itself: {line}"
    assert spoken not in items, f"'It also failed on' repeats the failure already spoken of: {line}"
    return items


@pytest.mark.parametrize("mutant, key", [("09_scaled_dot_product_attention__float64_downcast.patch",
                                          "computed_in_float32"),
                                         ("14_flash_attention__skip_one_block_early.patch",
                                          "causal_skip_one_block_early"),
                                         ("03_scores__permute_assumes_4d.patch", "permute_assumes_4d")])
def test_the_first_hint_after_a_named_near_miss_is_its_own(mutant, key, graded, tmp_path, monkeypatch, capsys):
    entry = graded[(mutant, SEEDS[0])]
    out = first_hint(entry, mutant[:2], tmp_path, monkeypatch, capsys)
    assert section(mutant[:2], key).splitlines()[0] in out, out
    spoken = next(t for t in entry["tests"] if t.get("mistake") == key)
    also_failed_on(out, f"{spoken['description']} (the known mistake `{key}`)")


def test_a_crash_gets_its_line_and_its_cause_not_another_hint(graded, tmp_path, monkeypatch, capsys):
    """05 without keepdim crashes in nearly every test: the hint quotes the line and names the broadcast."""
    entry = graded[("05_softmax__no_keepdim.patch", SEEDS[0])]
    out = first_hint(entry, "05", tmp_path, monkeypatch, capsys)
    assert "crashed" in out and "at line" in out and "keepdim=True" in out, out
    assert section("05", "test_float16_logits_up_to_6e4").splitlines()[0] not in out, out


def test_a_timeout_gets_too_slow_never_memory(graded, tmp_path, monkeypatch, capsys):
    entry = graded[("14_flash_attention__python_loop.patch", SEEDS[0])]
    assert any(t["kind"] == "timeout" for t in entry["tests"]), "the pure-Python loop did not time out"
    out = first_hint(entry, "14", tmp_path, monkeypatch, capsys)
    assert "too slow" in out.lower() and "a loop that grows with" in out, out
    assert section("14", "test_never_holds_the_score_matrix").splitlines()[0] not in out, out
    assert "It also failed on" not in out, "tests that were not checked are no failures"


def test_the_refusal_hint_follows_the_refusal(graded, tmp_path, monkeypatch, capsys):
    out = first_hint(graded[("13_kv_cache__length_bumped_early.patch", SEEDS[0])], "13", tmp_path, monkeypatch,
                     capsys)
    assert section("13", "test_overflow_is_refused").splitlines()[0] in out, out


# -- hints on made-up grades (no grading: fast) -------------------------------------------------
fast = pytest.mark.fast
def grade(*tests, score=5.0):
    return {"id": "05", "name": "softmax", "score": score, "max_score": 10.0, "status": "in progress",
            "tests": [dict({"passed": False, "status": "failed", "mistake": None, "kind": "fail", "message": "",
                            "category": "equivalence"}, **t) for t in tests]}


@fast
def test_a_test_that_was_not_checked_accuses_of_nothing(tmp_path, monkeypatch, capsys):
    entry = grade({"name": "test_matches_torch_softmax_on_last_axis", "description": "matches torch.softmax",
                   "mistake": "no_max_subtracted"},
                  {"name": "test_no_library_softmax", "description": "is built without torch.softmax",
                   "status": "not checked", "kind": "raised", "category": "rules"})
    out = first_hint(entry, "05", tmp_path, monkeypatch, capsys)
    assert section("05", "no_max_subtracted").splitlines()[0] in out
    assert "is built without torch.softmax" not in out, out


@fast
def test_hint_levels_are_kept_per_failure(tmp_path, monkeypatch, capsys):
    first = grade({"name": "test_matches_torch_softmax_on_last_axis", "description": "matches torch.softmax",
                   "mistake": "no_max_subtracted"})
    outs = first_hint(first, "05", tmp_path, monkeypatch, capsys, times=4)
    assert [f"Hint {n} of 3" in out for n, out in zip((1, 2, 3), outs[1:])] == [True] * 3, outs
    # A new grade with another failure: its section first, then hint 1 again, not 3 of 3.
    other = grade({"name": "test_normalises_along_the_given_dim", "description": "uses dim",
                   "mistake": "dim_ignored"})
    state.save_json(state.LAST, {"05": dict(other, time=time.time() + 7200)})
    hints.hint(find("05"))
    out = capsys.readouterr().out
    assert section("05", "dim_ignored").splitlines()[0] in out and "gives hint 1 of 3" in out, out
    hints.hint(find("05"))
    assert "Hint 1 of 3" in capsys.readouterr().out
    # Back to the first failure: its level was kept.
    state.save_json(state.LAST, {"05": dict(first, time=time.time() + 10800)})
    hints.hint(find("05"))
    hints.hint(find("05"))
    assert "Hint 3 of 3" in capsys.readouterr().out
    assert json.loads((tmp_path / "hints.json").read_text())["05"]["levels"] == \
        {"no_max_subtracted": 3, "dim_ignored": 1}


# -- the signatures a name must show, on made-up outputs (fast) ----------------------------------
def tiled(L, S, b, stop, relative):
    """The keys a tiled causal pass lets query i see: skipping key blocks from `stop(q0, q1)` on, and masking
    a crossing tile with absolute or tile-relative positions."""
    seen = torch.zeros(L, S, dtype=torch.float64)
    offset = S - L
    for q0 in range(0, L, b):
        q1 = min(q0 + b, L)
        for k0 in range(0, max(min(S, stop(q0, q1) + offset), 0), b):
            k1 = min(k0 + b, S)
            i = torch.arange(q0, q1)[:, None] - (q0 if relative else 0)
            j = torch.arange(k0, k1)[None, :] - (k0 if relative else 0)
            tile = torch.ones(q1 - q0, k1 - k0, dtype=torch.float64)
            if k1 - 1 > q0 + offset:
                tile = torch.where(j > i + offset, 0.0, 1.0)
            seen[q0:q1, k0:k1] = tile
    return seen


def named(L, S, b, weights):
    rng = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, n, 4, generator=rng, dtype=torch.float64) for n in (L, S, S))
    causal = torch.ones(L, S, dtype=torch.bool).tril(S - L)
    attending = Attending(lambda w: attention_with_key_weights(q, k, v, w), causal, b)
    with pytest.raises(Fail) as caught:
        close(attention_with_key_weights(q, k, v, weights), attention_with_key_weights(q, k, v, causal.double()),
              attending=attending)
    return caught.value.mistake, str(caught.value)


@fast
@pytest.mark.parametrize("L, S, b", [(20, 20, 5), (11, 22, 4), (13, 17, 4)])
def test_a_causal_skip_one_block_early_is_named_so_not_as_a_range_bug(L, S, b):
    key, said = named(L, S, b, tiled(L, S, b, lambda q0, q1: q1 - b, relative=False))
    assert key == "causal_skip_one_block_early", said


@fast
@pytest.mark.parametrize("L, S, b", [(11, 22, 4), (10, 26, 4), (10, 18, 4)])
def test_tile_relative_indices_are_not_named_a_slack_in_the_tile_test(L, S, b):
    key, said = named(L, S, b, tiled(L, S, b, lambda q0, q1: q1, relative=True))
    assert key != "diagonal_tile_unmasked", said


@fast
def test_a_float64_result_computed_in_float32_is_named_by_its_dtype_path():
    rng = torch.Generator().manual_seed(1)
    right = torch.randn(2, 3, 5, 4, generator=rng, dtype=torch.float64).softmax(-1)
    noise = 1 + 3e-6 * torch.randn(right.shape, generator=rng, dtype=torch.float64)     # rounding errs both ways
    with pytest.raises(Fail) as caught:
        close(right.float().double() * noise, right)
    assert caught.value.mistake == "computed_in_float32" and "float32's precision" in str(caught.value)
    with pytest.raises(Fail) as caught:          # an eps added to the sum: small, but of one sign
        close(right * (1 - 3e-6 * torch.rand(right.shape, generator=rng, dtype=torch.float64)), right)
    assert caught.value.mistake != "computed_in_float32"
    with pytest.raises(Fail) as caught:          # a real error of 1e-3 is no precision
        close(right * (1 + 1e-3 * torch.rand(right.shape, generator=rng, dtype=torch.float64)), right)
    assert caught.value.mistake != "computed_in_float32"


@fast
def test_an_exception_the_test_asks_for_elsewhere_fails_the_test_rather_than_leave_it_not_checked(tmp_path):
    """A test that called `raises(ex, "ValueError", ...)` and then got ValueError from a call that should
    succeed failed its property: status failed, not "not checked" with that ValueError as the reason."""
    from types import SimpleNamespace
    from grader.sandbox import SubmissionError
    from grader.session import GraderPlugin
    from grader.status import TestStatus
    exercise = find("13")
    plugin = GraderPlugin([exercise], tmp_path, seed=1)

    def status(asked, error):
        plugin.results[exercise.id].tests.clear()
        plugin.submissions[exercise.id] = SimpleNamespace(expected_errors=set(asked))

        def test_refusal():
            """a refusal"""
        test_refusal.grade = ("edge", 1.0)
        item = SimpleNamespace(module=SimpleNamespace(__file__=str(exercise.test_module)), function=test_refusal,
                               name="test_refusal")
        hook = plugin.pytest_runtest_makereport(item, SimpleNamespace(when="call", excinfo=SimpleNamespace(
            value=error)))
        next(hook)
        with pytest.raises(StopIteration):
            hook.send(SimpleNamespace(duration=0.0))
        return plugin.results[exercise.id].tests[0]

    refused = SubmissionError("raised", "ValueError: cache overflow", "line 42", ("ValueError", "Exception"))
    t = status({"ValueError"}, refused)
    assert t.status == TestStatus.FAILED and "should succeed" in t.message, (t.status, t.message)
    t = status(set(), refused)                       # not asked for: a crash, so the property is not checked
    assert t.status == TestStatus.NOT_CHECKED
    t = status({"ValueError"}, SubmissionError("raised", "TypeError: no", "", ("TypeError", "Exception")))
    assert t.status == TestStatus.NOT_CHECKED


@fast
@pytest.mark.parametrize("error, cause", [
    ("RuntimeError: The size of tensor a (4) must match the size of tensor b (5) at non-singleton dimension 3",
     "keepdim=True"),
    ("RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)", "inner sizes"),
    ("RuntimeError: permute(sparse_coo): number of dimensions in the tensor input does not match the length of "
     "the desired ordering of dimensions i.e. input.dim() = 3 is not equal to len(dims) = 4", "transpose(-2, -1)"),
    ("RuntimeError: view size is not compatible with input tensor's size and stride", ".reshape"),
    ("RuntimeError: the grader does not allow torch.softmax here", "forbids"),
    ("ZeroDivisionError: division by zero", "Print the shapes"),
])
def test_a_crash_cause_is_read_from_its_error(error, cause):
    assert cause in hints.crash_cause(error)
