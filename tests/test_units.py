"""In-process unit tests of the grader's pieces: the wire, `checks.close`, `report.render`, `points`.
No grader run and no sandbox: `make test-fast` runs these in seconds."""
import io
import json
from fractions import Fraction

import numpy as np
import pytest
import torch

from helpers import EXERCISES
from grader import points, report
from grader.checks import TOLERANCE, Fail, close
from grader.sandbox import wire
from grader.session import ExerciseResult
from grader import session

pytestmark = pytest.mark.fast


# -- the wire --------------------------------------------------------------------------------------
def test_wire_round_trip_keeps_dtypes_shapes_empty_and_non_contiguous_tensors():
    t = torch.arange(12, dtype=torch.float64).reshape(3, 4).t()          # not contiguous
    value = [t, torch.empty(0, 3, dtype=torch.int8), torch.tensor(7, dtype=torch.int64),
             torch.zeros(2, dtype=torch.complex128), torch.tensor([1.5], dtype=torch.bfloat16)]
    back = wire.decode(wire.encode(value))
    assert isinstance(back, list) and len(back) == len(value)
    for sent, got in zip(value, back):
        assert got.dtype == sent.dtype and got.shape == sent.shape and torch.equal(got, sent)
        assert type(got) is torch.Tensor and not vars(got)          # plain data, no mark of the grader
    assert wire.decode(wire.encode((1, [2, (3,)]))) == (1, [2, (3,)])     # tuples stay tuples, lists lists


def test_wire_sends_only_exact_types_and_runs_none_of_the_submissions_code():
    ran = []

    class Liar(torch.Tensor):
        pass

    class Tensor(torch.nn.Parameter):          # a subclass that borrows the plain type's name
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            ran.append(func)
            return super().__torch_function__(func, types, args, kwargs or {})

    class Posing:                               # isinstance believes it; type() does not
        @property
        def __class__(self):
            ran.append("__class__")
            return np.ndarray

        def __array__(self, *args, **kwargs):
            ran.append("__array__")
            return np.zeros(2)

    sent = [torch.ones(3).as_subclass(Liar), Tensor(torch.ones(2)), Posing()]
    ran.clear()
    got = wire.decode(wire.encode(sent))
    assert not ran, f"encoding ran the submission's code: {ran}"
    assert [type(g) for g in got] == [wire.Opaque] * 3 and [g.type_name for g in got] == ["Liar", "Tensor", "Posing"]
    assert wire.disguised([sent, {"k": sent[0]}]) == ["Liar", "Tensor", "Posing", "Liar"] and not ran
    plain = wire.decode(wire.encode([torch.nn.Parameter(torch.ones(1)), np.ones(2)]))
    assert type(plain[0]) is torch.Tensor and type(plain[1]) is np.ndarray
    assert wire.disguised([torch.nn.Parameter(torch.ones(1)), torch.ones(1), np.ones(1)]) == []


def test_wire_rejects_every_truncation_of_a_reply():
    data = wire.encode({"x": torch.arange(4.0), "y": [1, "two"]})
    for cut in range(len(data) - 1):
        try:
            back = wire.decode(data[:cut])
        except Exception:
            continue
        # A cut inside the blobs may still parse: then the tensor must not come back whole.
        assert not (isinstance(back, dict) and torch.equal(back.get("x"), torch.arange(4.0))), cut


def test_wire_request_frames_and_gradients():
    x = torch.ones(2, requires_grad=True)
    data = wire.request(([x, 3], {"dim": -1}))
    (length,) = wire.HEADER.unpack_from(data)
    assert length == len(data) - wire.HEADER.size
    args, kwargs = wire.decode_request(data[wire.HEADER.size:])
    assert args[0].requires_grad and not torch.is_tensor(args[1]) and kwargs == {"dim": -1}
    assert not vars(args[0]), "an input carries a mark that says the grader made it"
    token = b"t" * wire.TOKEN_BYTES
    framed = wire.frame(token, b"R", b"payload")
    assert framed[wire.HEADER.size:] == token + b"R" + b"payload"


# -- checks.close ------------------------------------------------------------------------------------
def _off_by(dtype, ratio):
    """(actual in dtype, expected in float64) whose error is `ratio` times the dtype's tolerance."""
    rtol, atol = TOLERANCE[dtype]
    expected = torch.tensor([1.0, -2.0, 4.0], dtype=torch.float64)
    actual = (expected + ratio * (atol + rtol * expected.abs())).to(dtype)
    real = ((actual.double() - expected).abs() / (atol + rtol * expected.abs())).max()
    assert (real < 1) == (ratio < 1), f"{dtype}: rounding moved the error to {real:.2f} of the tolerance"
    return actual, expected


@pytest.mark.parametrize("dtype", list(TOLERANCE), ids=str)
def test_close_accepts_within_the_dtype_tolerance_and_fails_beyond_it(dtype):
    actual, expected = _off_by(dtype, 0.8)
    close(actual, expected, dtype=dtype)
    actual, expected = _off_by(dtype, 1.5)
    with pytest.raises(Fail) as e:
        close(actual, expected, dtype=dtype)
    assert e.value.on == "values" and "differs from the expected values in 3 of 3 entries" in str(e.value)


def test_tolerances_narrow_as_precision_grows():
    order = [torch.bfloat16, torch.float16, torch.float32, torch.float64]
    assert [TOLERANCE[d] for d in order] == sorted((TOLERANCE[d] for d in order), reverse=True)
    # An error float32 tolerates is too large for float64.
    expected = torch.tensor([1.0], dtype=torch.float64)
    close((expected * (1 + 1e-5)).float(), expected, dtype=torch.float32)
    with pytest.raises(Fail):
        close(expected * (1 + 1e-5), expected)


def test_close_says_what_is_wrong_first_type_shape_dtype_nan():
    e = torch.zeros(2, 3, dtype=torch.float64)
    cases = [(None, "type", "should be a torch.Tensor"), (torch.zeros(3, 2, dtype=torch.float64), "shape",
             "wrong shape: expected (2, 3), got (3, 2)"), (torch.zeros(2, 3), "dtype", "should keep the input's dtype"),
             (torch.full((2, 3), float("nan"), dtype=torch.float64), "values", "holds NaN")]
    for actual, on, words in cases:
        with pytest.raises(Fail) as raised:
            close(actual, e)
        assert raised.value.on == on and words in str(raised.value), str(raised.value)


def test_close_matches_infinities_honours_the_mask_and_widens_atol_by_magnitude():
    e = torch.tensor([float("-inf"), 0.0], dtype=torch.float64)
    close(e.clone(), e)
    with pytest.raises(Fail):
        close(torch.tensor([float("-inf"), float("inf")], dtype=torch.float64), e)
    wrong_first = torch.tensor([5.0, 0.0], dtype=torch.float64)
    close(wrong_first, torch.zeros(2, dtype=torch.float64), mask=torch.tensor([False, True]))
    off = torch.tensor([1e-6], dtype=torch.float64)
    with pytest.raises(Fail):
        close(off, torch.zeros(1, dtype=torch.float64))
    close(off, torch.zeros(1, dtype=torch.float64), magnitude=torch.tensor([1000.0]))


def test_close_fails_the_wrong_value_where_an_infinity_is_expected():
    e = torch.tensor([float("-inf")], dtype=torch.float64)
    for wrong in (float("inf"), float("nan"), 0.0):
        with pytest.raises(Fail):
            close(torch.tensor([wrong], dtype=torch.float64), e)


def test_a_constant_factor_is_named_in_the_diagnosis():
    e = torch.arange(1.0, 7.0, dtype=torch.float64).reshape(2, 3)
    with pytest.raises(Fail) as raised:
        close(e * 0.5, e)
    assert "0.5 times the expected one everywhere" in str(raised.value)


# -- report.render -------------------------------------------------------------------------------------
def _result(tmp_path, ex_id, tests, **fields):
    exercise = next(ex for ex in EXERCISES if ex.id == ex_id)
    path = tmp_path / exercise.filename
    path.write_text("# made up\n")
    return ExerciseResult(exercise, path, tests=tests, layers=["seccomp", "rlimits"], **fields)


def _test(name, category, points_, passed, **fields):
    return session.TestResult(name, f"checks {name}", category, points_, passed, **fields)


def test_render_shows_scores_bars_categories_and_the_failures_in_order(tmp_path):
    done = _result(tmp_path, "03", [_test("a", "shapes", 5.0, True), _test("b", "rules", 5.0, True)])
    half = _result(tmp_path, "05", [
        _test("shape", "shapes", 2.5, True),
        _test("fp16", "fp16", 2.5, False, kind="fail", message="it overflowed\nThis looks like a known mistake: "
              "no max.\nMore about it.", mistake="no_max_subtracted"),
        _test("again", "equivalence", 2.5, False, kind="fail", message="off\nThis looks like a known mistake: "
              "no max.\nMore about it.", mistake="no_max_subtracted"),
        _test("edge", "edge", 1.25, False, kind="raised", message="your code raised ValueError"),
        _test("rules", "rules", 1.25, True)])
    text = report.render([done, half], seed=42, directory="exercises", stream=io.StringIO())
    lines = text.splitlines()
    assert lines[0] == "Grading exercises/  (seed 42)"
    assert lines[1].startswith("isolation: ") and "seccomp" in lines[1] and "not here:" in lines[1]
    assert "\033[" not in text, "no colour when the stream is not a terminal"
    row03 = next(line for line in lines if line.startswith("  03 scores"))
    assert row03.split()[2:] == ["10/10", "██████████", "complete"]
    row05 = next(line for line in lines if line.startswith("  05 softmax"))
    assert "3.75/10" in row05 and "████······" in row05
    assert "shapes ✓" in row05 and "fp16 ✗" in row05 and "equivalence ✗" in row05 and "edge –" in row05
    assert text.index("✗ checks fp16") < text.index("✗ checks again") < text.index("– checks edge")
    assert text.count("This looks like a known mistake") == 1 and "Again the known mistake above: no max." in text
    assert "Total 13.75 / 20" in text and "[edge, 1.25 pt" in text     # quarter points, exact
    assert "Next: Continue with exercises/05_softmax.py, then run make grade EX=05" in text
    assert lines[-1].startswith("Same inputs again: make grade SEED=42")


def test_render_cuts_failures_past_the_limit_and_names_status_words(tmp_path):
    many = _result(tmp_path, "09", [_test(f"t{i}", "equivalence", 1.0, False, kind="fail", message=f"wrong {i}")
                                    for i in range(5)] + [_test("ok", "shapes", 5.0, True)])
    broken = _result(tmp_path, "10", [], import_error="SyntaxError: invalid syntax (line 1: def f(:)")
    forbidden = _result(tmp_path, "01", [_test("ok", "shapes", 10.0, True)],
                        forbidden=["uses torch.nn.functional.linear"])
    text = report.render([many, broken, forbidden], seed=1, directory="sub", selection_args="09 10 01 ",
                         stream=io.StringIO(), max_failures=3)
    assert "wrong 2" in text and "wrong 3" not in text
    assert "... and 2 more failing checks (make grade EX=09 shows all)" in text
    assert "does not load" in text and "SyntaxError: invalid syntax" in text
    assert "forbidden helper: 0" in text and "Scored 0: the file uses torch.nn.functional.linear" in text
    assert forbidden.score == 0
    assert 'make grade EX="09 10 01" SEED=1' in text


def test_json_report_of_made_up_results_is_the_contract_shape(tmp_path):
    r = _result(tmp_path, "06", [_test("a", "equivalence", 7.5, True), _test("b", "rules", 2.5, True)])
    data = json.loads(json.dumps(report.to_json([r], seed=9)))
    assert data["score"] == data["max_score"] == 10.0 and data["seed"] == 9
    assert data["isolation"] == {"layers": ["seccomp", "rlimits"]}
    (ex,) = data["exercises"]
    assert (ex["id"], ex["status"], ex["error"]) == ("06", "complete", "")
    assert [t["status"] for t in ex["tests"]] == ["passed", "passed"]


def test_rules_points_count_only_beside_behaviour(tmp_path):
    only_rules = _result(tmp_path, "07", [_test("b", "equivalence", 7.5, False, kind="not_implemented"),
                                          _test("r", "rules", 2.5, True)])
    assert only_rules.score == 0 and only_rules.status == "in progress"
    behaves = _result(tmp_path, "07", [_test("b", "equivalence", 7.5, True), _test("r", "rules", 2.5, True)])
    assert behaves.score == 10 and behaves.status == "complete"
    stub = _result(tmp_path, "07", [_test("b", "equivalence", 7.5, False, kind="not_implemented"),
                                    _test("r", "rules", 2.5, False, kind="not_implemented")])
    assert stub.score == 0 and stub.status == "not started"


# -- points ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("weights", [[1, 1, 1], [3, 1], [0.1] * 7, [5, 1e-6, 2, 2], [1] * 40])
def test_on_grid_adds_up_exactly_in_quarters(weights):
    parts = points.on_grid(weights, 10)
    assert len(parts) == len(weights) and all(p >= 0.25 and points.exact(p) for p in parts)
    assert sum(Fraction(p) for p in parts) == 10 and sum(parts) == 10.0


def test_on_grid_follows_the_weights_and_refuses_too_many_tests():
    assert points.on_grid([3, 1], 10) == [7.5, 2.5]
    assert points.on_grid([], 10) == []
    assert points.on_grid([0, 0], 1) == [0.5, 0.5]
    with pytest.raises(ValueError, match="41 tests cannot each get a quarter of 10 points"):
        points.on_grid([1] * 41, 10)
    assert points.exact(2.75) and not points.exact(0.1)


class _Counted:
    """Stands in for a submission: `call(n)` 'dispatches' ops(n) operations, as the sandbox would count them."""

    def __init__(self, ops):
        self.ops, self.last_call, self.mistakes, self.outcomes, self.source = ops, None, [], [], None
        self.box = type("Box", (), {"meta": {}})()

    def call(self, **sizes):
        self.box.meta = {"ops": self.ops(**sizes)}


@pytest.mark.fast
def test_no_loops_names_the_axis_whose_size_grows_the_operations():
    from grader.checks import no_loops
    constant = _Counted(lambda B, H, L: 40)
    no_loops(constant, constant.call, {"B": (2, 8), "H": (2, 8), "L": (2, 8)})
    per_head = _Counted(lambda B, H, L: 20 + 5 * H)
    with pytest.raises(Fail, match=r"when H goes from 2 to 8 \(30 → 60\): a loop over heads"):
        no_loops(per_head, per_head.call, {"B": (2, 8), "H": (2, 8), "L": (2, 8)})


@pytest.mark.fast
def test_relations_hold_on_the_learners_own_results_whatever_the_values():
    from grader.checks import agrees, keys_hidden, shaped
    ex = _Counted(lambda: 0)
    shaped(torch.zeros(2, 3), (2, 3), torch.float32)                 # any values
    with pytest.raises(Fail) as e:
        shaped(torch.zeros(2, 3), (2, 3), torch.float64)
    assert e.value.on == "dtype"
    x = torch.randn(4, 5, dtype=torch.float64)
    agrees(x.to(torch.float16), None, x, "rounds", ex, dtype=torch.float16, finite=True)
    with pytest.raises(Fail, match="NaN or inf"):
        agrees(torch.full((2,), float("nan"), dtype=torch.float16), None, torch.full((2,), float("nan")), "rounds", ex,
               dtype=torch.float16, finite=True)
    agrees(torch.full((2,), float("nan")), None, torch.full((2,), float("nan")), "same", ex)   # both NaN: the same
    k, v = torch.randn(1, 3, 4, dtype=torch.float64), torch.randn(1, 3, 2, dtype=torch.float64)
    blocked = torch.tensor([[False, True, True], [False, False, True]])
    weights = torch.where(blocked, 0.0, 1.0)

    def attend(k, v, weights=weights):             # weights per key, the scores' role played by k's first feature
        return (weights * k[..., None, :, 0].exp()) @ v
    keys_hidden(ex, attend, k, v, blocked)
    with pytest.raises(Fail, match="blocks from it"):
        keys_hidden(ex, lambda k, v: attend(k, v, torch.ones(2, 3)), k, v, blocked)
    with pytest.raises(Fail, match="leaves visible must count"):
        keys_hidden(ex, lambda k, v: attend(k, v, torch.tensor([[1.0, 0, 0], [0, 0, 0]])), k, v, blocked)
