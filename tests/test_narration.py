"""Checked shape narration (grader/narration.py): the tracer that records the shapes each line of
a learner's function assigns, and the pure checker that compares them with the shape comments."""
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grader import narration  # noqa: E402
from grader.narration import check_narration, known_sizes, parse_shape, record_shapes  # noqa: E402

# B, H, L, S, d_head and D all distinct, so a swapped pair cannot pass.
SIZES = dict(B=2, H=3, L=5, S=7, D=33)

GOOD = '''\
import math
import torch


def attend(x, w_q, w_k, w_v, num_heads, context):
    B, L, D = x.shape
    S = context.shape[1]
    H = num_heads
    d = D // H
    q = x @ w_q.T                                       # (B, L, D)
    k = context @ w_k.T                                 # (B, S, D) keys, from the context
    v = context @ w_v.T                                 # B, S, d_model
    q = q.view(B, L, H, d).transpose(1, 2)              # (B, H, L, d_head)
    k = k.view(B, S, H, d).transpose(1, 2)              # (B, H, S, d_head)
    v = v.view(B, S, H, d).transpose(1, 2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)     # (B, H, L, S)
    probs = scores.softmax(-1)                          # (..., L, S)
    out = probs @ v                                     # (B, H, L, d_head)
    out = out.transpose(1, 2).reshape(B, L, H * d)      # (B, L, H*d_head)
    return out                                          # (B, L, D)
'''


def load(tmp_path, source, name="learner"):
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, str(path)


def inputs():
    g = torch.Generator().manual_seed(0)
    B, L, S, D = SIZES["B"], SIZES["L"], SIZES["S"], SIZES["D"]
    return (torch.randn(B, L, D, generator=g), torch.randn(D, D, generator=g), torch.randn(D, D, generator=g),
            torch.randn(D, D, generator=g), SIZES["H"], torch.randn(B, S, D, generator=g))


def narrate(tmp_path, source, fn="attend", args=None, known=None):
    module, path = load(tmp_path, source)
    record = record_shapes(getattr(module, fn), args if args is not None else inputs(), {}, path)
    return check_narration(source, record, known_sizes(**SIZES) if known is None else known), record


def line_of(source, needle):
    return next(i for i, line in enumerate(source.splitlines(), 1) if needle in line)


# -- the tracer ----------------------------------------------------------------------------------
def test_record_shapes_sees_every_tensor_a_line_assigns(tmp_path):
    module, path = load(tmp_path, GOOD)
    record = record_shapes(module.attend, inputs(), {}, path)
    at = {line: shapes for line, shapes in record["lines"].items()}
    assert at[line_of(GOOD, "q = x @ w_q.T")] == [["q", [2, 5, 33]]]
    assert at[line_of(GOOD, "scores = q @")] == [["scores", [2, 3, 5, 7]]]
    assert at[line_of(GOOD, "out = out.transpose")] == [["out", [2, 5, 33]]]
    assert line_of(GOOD, "B, L, D = x.shape") not in at            # ints and torch.Size are not tensors
    assert record["returns"] == {line_of(GOOD, "return out"): [2, 5, 33]}
    assert record["error"] is None
    assert record["order"][0] == line_of(GOOD, "q = x @ w_q.T")
    assert line_of(GOOD, "S = context.shape[1]") in record["executed"]


def test_record_shapes_restores_the_previous_tracer_and_keeps_what_it_saw_on_an_error(tmp_path):
    src = "def f(x):\n    y = x * 2  # (B, L)\n    raise ValueError('no')\n"
    module, path = load(tmp_path, src)
    mine = []

    def outer(frame, event, arg):
        mine.append(event)
        return None
    sys.settrace(outer)
    try:
        record = record_shapes(module.f, (torch.zeros(2, 5),), None, path)
        assert sys.gettrace() is outer
    finally:
        sys.settrace(None)
    assert record["error"] == "ValueError"
    assert record["lines"] == {2: [["y", [2, 5]]]}


def test_record_shapes_follows_methods_self_attributes_loops_and_helpers(tmp_path):
    src = textwrap.dedent('''\
        import torch


        def helper(t):
            u = t.sum(-1)          # (B,)
            return u


        class Cache:
            def __init__(self, B, H, max_len, d):
                self.k = torch.zeros(B, H, max_len, d)      # (B, H, max_len, d)
                self.length = 0

            def run(self, x):
                total = helper(x)                          # (B,)
                for i in range(3):
                    part = x[:, : i + 1]                   # (B, n)
                return total
        ''')
    module, path = load(tmp_path, src)
    rec = record_shapes(lambda: module.Cache(2, 3, 11, 5).run(torch.zeros(2, 4)), (), {}, path)
    assert rec["lines"][line_of(src, "self.k = torch.zeros")] == [["self.k", [2, 3, 11, 5]]]
    assert rec["lines"][line_of(src, "u = t.sum")] == [["u", [2]]]
    assert rec["lines"][line_of(src, "part = x")] == [["part", [2, 3]]]     # its last run
    result = check_narration(src, rec, known_sizes(B=2, H=3))
    assert result["wrong"] == [] and result["right"] == result["annotated"] == 4, result


def test_the_tracer_imports_only_the_standard_library_and_torch():
    code = textwrap.dedent(f'''
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("narr", {str(REPO / "grader" / "narration.py")!r})
        m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
        import torch
        rec = m.record_shapes(lambda: torch.zeros(2), (), {{}}, "nowhere.py")
        bad = [k for k in sys.modules if k == "grader" or k.startswith(("grader.", "solutions", "numpy.random"))]
        assert not bad, bad
        print("ok")
    ''')
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr
    import ast
    tree = ast.parse((REPO / "grader" / "narration.py").read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "record_shapes")
    top = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    inner = {a.name.split(".")[0] for n in ast.walk(fn) if isinstance(n, ast.Import) for a in n.names}
    assert not any(isinstance(n, ast.ImportFrom) for n in tree.body)
    assert top <= set(sys.stdlib_module_names) and inner <= {"torch"} | set(sys.stdlib_module_names)


# -- parsing comments --------------------------------------------------------------------------
@pytest.mark.parametrize("comment, dims", [
    ("# (B, H, L, d_head)", ["B", "H", "L", "d_head"]),
    ("# B, L, D", ["B", "L", "D"]),
    ("# (..., L, S)", ["...", "L", "S"]),
    ("# (B, L, H*d_head) merged", ["B", "L", "H*d_head"]),
    ("#(B, 1, 1, S)", ["B", "1", "1", "S"]),
    ("# (L,)", ["L"]),
    ("# (S)", ["S"]),
    ("# ()", []),
    ("# (B, L, D // H)", ["B", "L", "D//H"]),
    ("# compute the scores", None),
    ("# (optional) the bias", None),
    ("# see step 3, then scale", None),
    ("# TODO", None),
    ("# (B, H, L", None),
    ("# (..., L, d_k) @ (..., d_k, S) -> (..., L, S)", ["...", "L", "S"]),
    ("# q k^T → B, H, L, S", ["B", "H", "L", "S"]),
])
def test_parse_shape(comment, dims):
    assert parse_shape(comment) == dims


# -- checking ------------------------------------------------------------------------------------
def test_correct_comments_all_right(tmp_path):
    result, _ = narrate(tmp_path, GOOD)
    assert result["wrong"] == [] and result["not_tensor"] == []
    assert result["tensor_lines"] == 11 and result["annotated"] == 10 and result["right"] == 10
    assert result["line"] == "narration: 10 of 11 tensor lines annotated, 10 right"
    assert narration.score(result) == (10 / 11, 1.0)


TWO_WRONG = GOOD.replace("q = q.view(B, L, H, d).transpose(1, 2)              # (B, H, L, d_head)",
                         "q = q.view(B, L, H, d).transpose(1, 2)              # (B, L, H, d_head)") \
                .replace("# (B, H, L, S)", "# (B, H, S, L)")


def test_wrong_comments_are_found_at_their_lines(tmp_path):
    assert TWO_WRONG != GOOD
    result, _ = narrate(tmp_path, TWO_WRONG)
    first, second = line_of(TWO_WRONG, "# (B, L, H, d_head)"), line_of(TWO_WRONG, "# (B, H, S, L)")
    assert [w["line"] for w in result["wrong"]] == [first, second]
    assert result["wrong"][0]["says"] == "(B, L, H, d_head)" and result["wrong"][0]["actual"] == "(B, H, L, d_head)"
    assert result["wrong"][1]["says"] == "(B, H, S, L)" and result["wrong"][1]["actual"] == "(B, H, L, S)"
    assert result["right"] == 8 and result["annotated"] == 10
    assert result["line"] == (f"narration: 10 of 11 tensor lines annotated, 8 right; line {first} says "
                              f"(B, L, H, d_head), the tensor is (B, H, L, d_head); line {second} says "
                              f"(B, H, S, L), the tensor is (B, H, L, S)")
    print(result["line"])


def test_unannotated_lines_count_against_coverage_only(tmp_path):
    bare = "\n".join(line.split("#")[0].rstrip() for line in GOOD.splitlines()) + "\n"
    result, _ = narrate(tmp_path, bare)
    assert result["annotated"] == 0 and result["tensor_lines"] == 10 and result["wrong"] == []
    assert result["line"] == "narration: 0 of 10 tensor lines annotated, 0 right"


def test_a_symbol_used_inconsistently_is_caught(tmp_path):
    src = GOOD.replace("# (B, S, D) keys, from the context", "# (B, T, D)") \
              .replace("q = x @ w_q.T                                       # (B, L, D)",
                       "q = x @ w_q.T                                       # (B, L, D)") \
              .replace("# (B, H, L, d_head)\n    k", "# (B, H, T, d_head)\n    k")
    # T is not an input size here: it binds to 7 (S) on the k line, then the q line says T for L = 5.
    result, _ = narrate(tmp_path, src, known=known_sizes(B=2, H=3, L=5, D=33))
    assert len(result["wrong"]) == 1, result
    w = result["wrong"][0]
    assert w["line"] == line_of(src, "# (B, H, T, d_head)")
    assert w["why"] == f"T was 7 on line {line_of(src, '# (B, T, D)')}, here it is 5"
    assert "T was 7" in result["line"]


def test_unknown_symbols_bind_at_first_use_and_must_agree_within_a_line(tmp_path):
    src = "import torch\n\n\ndef f(x):\n    y = x @ x.T      # (N, N)\n    z = x.T @ x      # (M, N)\n" \
          "    w = x[:, :1]     # (N, 1)\n    return w\n"
    module, path = load(tmp_path, src)
    result = check_narration(src, record_shapes(module.f, (torch.zeros(4, 6),), {}, path), {})
    assert result["right"] == 2 and [w["line"] for w in result["wrong"]] == [6]
    assert result["bindings"] == {"N": 4}


def test_comments_on_lines_that_are_not_tensors(tmp_path):
    src = GOOD.replace("    B, L, D = x.shape\n", "    B, L, D = x.shape                                   # B, L, D\n") \
              .replace("    d = D // H\n", "    d = D // H                                          # (d_head,)\n")
    result, _ = narrate(tmp_path, src)
    assert result["not_tensor"] == [line_of(src, "B, L, D = x.shape"), line_of(src, "d = D // H")]
    assert result["wrong"] == [] and result["annotated"] == 10
    assert "lines 6, 9: a shape comment where no tensor is assigned" in result["line"]


def test_a_comment_on_a_continuation_line_and_a_branch_not_taken(tmp_path):
    src = textwrap.dedent('''\
        import torch


        def f(x, mask=None):
            y = (x
                 * 2)              # (B, L)
            if mask is not None:
                y = y.masked_fill(mask, 0.0)    # (B, L)
            return y
        ''')
    module, path = load(tmp_path, src)
    result = check_narration(src, record_shapes(module.f, (torch.zeros(2, 5),), {}, path), known_sizes(B=2, L=5))
    assert result["right"] == 1 and result["not_run"] == [line_of(src, "masked_fill")]


def test_numbers_and_ellipsis(tmp_path):
    src = "import torch\n\n\ndef f(x):\n    a = x[:, None, None, :]   # (B, 1, 1, S)\n" \
          "    b = a.sum(0)             # (..., S)\n    c = a.sum(0)             # (..., 1, 2, S)\n    return c\n"
    module, path = load(tmp_path, src)
    result = check_narration(src, record_shapes(module.f, (torch.zeros(2, 7),), {}, path), known_sizes(B=2, S=7))
    assert result["right"] == 2 and [w["line"] for w in result["wrong"]] == [7]


# -- the representative calls, on every exercise ------------------------------------------------
EXERCISES = sorted(p.stem for p in (REPO / "solutions").glob("[0-9][0-9]_*.py"))


def annotate(source, record, known):
    """The source with a correct shape comment on every line that assigned a tensor."""
    cover, _, _ = narration._statements(source)
    by_value = {}
    for name, value in known.items():
        by_value.setdefault(value, name)
    want = {}
    for raw, items in record["lines"].items():
        stmt = cover.get(int(raw), int(raw))
        want.setdefault(stmt, items[0][1])
    import io
    import tokenize
    comments = {t.start[0]: t.start[1] for t in tokenize.generate_tokens(io.StringIO(source).readline)
                if t.type == tokenize.COMMENT}
    lines = source.split("\n")
    for line, shape in want.items():
        text = "(" + ", ".join(by_value.get(s, str(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        code = lines[line - 1][:comments[line]] if line in comments else lines[line - 1]
        lines[line - 1] = code.rstrip() + "  # " + text
    return "\n".join(lines), len(want)


@pytest.mark.parametrize("name", EXERCISES)
def test_representative_call_on_the_reference_and_generated_comments_are_all_right(tmp_path, name):
    source = (REPO / "solutions" / f"{name}.py").read_text()
    module, path = load(tmp_path, source, "ref_" + name)
    fn, args, kwargs, known = narration.representative(name[:2], module)
    sizes = [v for k, v in known.items() if k not in ("D", "d_model", "d", "d_head")]
    assert len(sizes) == len(set(sizes)), f"{name}: the representative sizes must all differ: {known}"
    record = record_shapes(fn, args, kwargs, path)
    assert record["error"] is None and (record["lines"] or record["returns"]), record
    annotated, n = annotate(source, record, known)
    result = check_narration(annotated, record, known)
    # Every line that assigned a tensor now carries a right comment (the reference's own comments
    # on other lines, returns among them, are checked too and must be right).
    assert result["wrong"] == [] and result["right"] == result["annotated"] >= n, (result, annotated)
    assert result["tensor_lines"] == result["annotated"]


@pytest.mark.parametrize("name", EXERCISES)
def test_representative_call_on_the_stub_records_the_error(tmp_path, name):
    module, path = load(tmp_path, (REPO / "exercises" / f"{name}.py").read_text(), "stub_" + name)
    try:
        fn, args, kwargs, known = narration.representative(name[:2], module)
    except NotImplementedError:
        return                                         # 13: its cache cannot even be built
    record = record_shapes(fn, args, kwargs, path)
    assert record["error"] == "NotImplementedError"
    result = check_narration(module.__doc__ and (REPO / "exercises" / f"{name}.py").read_text(), record, known)
    assert result["annotated"] == 0


def test_several_ellipses_and_arrows(tmp_path):
    src = "import torch\n\n\ndef f(x):\n    m = x.amax(1, keepdim=True)   # (..., 1, ...) max along dim 1\n" \
          "    s = x @ x.transpose(-2, -1)  # (B, L, D) @ (B, D, L) -> (B, L, L)\n" \
          "    t = x.sum(1)                 # (..., 1, ...)\n    return m\n"
    module, path = load(tmp_path, src)
    result = check_narration(src, record_shapes(module.f, (torch.zeros(2, 5, 3),), {}, path), known_sizes(B=2, L=5))
    assert result["right"] == 2 and [w["line"] for w in result["wrong"]] == [7], result


def test_products_need_their_symbols(tmp_path):
    src = "import torch\n\n\ndef f(x):\n    y = x.flatten(1)   # (B, L*D)\n    z = x.flatten(1)   # (B, L*Q)\n" \
          "    w = x.flatten(1)   # (B, Z*D)\n    return y\n"
    module, path = load(tmp_path, src)
    result = check_narration(src, record_shapes(module.f, (torch.zeros(2, 5, 3),), {}, path), known_sizes(B=2, L=5, D=3))
    assert result["right"] == 1
    assert [(w["line"], w["why"]) for w in result["wrong"]] == [(6, "L*Q uses a symbol not bound yet"),
                                                                (7, "Z*D uses a symbol not bound yet")]


# -- wired into a grading run: `python -m grader NN --narrate`, traced inside the sandbox ------------
def test_the_grader_reports_narration_from_the_sandbox_and_only_when_asked(tmp_path):
    from helpers import grade, submission
    reference = (REPO / "solutions" / "07_merge_heads.py").read_text()
    wrong = reference.replace("x.transpose(1, 2)                      # (B, L, H, d_head)",
                              "x.transpose(1, 2)                      # (B, H, L, d_head)", 1)
    assert wrong != reference
    folder = submission(tmp_path, {"07_merge_heads.py": wrong})
    code, report, text = grade(folder, "07", seed=3, extra=["--narrate"])
    ex = report["exercises"][0]
    assert ex["score"] == 10.0, text            # narration earns and costs no points
    n = ex["narration"]
    assert n["wrong"] and "says (B, H, L, d_head), the tensor is (B, L, H, d_head)" in n["line"], n
    assert n["line"] in text
    code, plain, text = grade(folder, "07", seed=3)
    assert "narration" not in plain["exercises"][0] and "narration:" not in text
    assert plain["exercises"][0]["score"] == 10.0


# -- the record is untrusted data (issue 19): it is made in the submission's process ---------------
def a_record(**changes):
    record = {"lines": {5: [["y", [2, 5]]]}, "sizes": {}, "returns": {6: [2, 5]}, "order": [5, 6],
              "executed": [5, 6], "error": None, "error_line": None}
    record.update(changes)
    return record


SMALL = "import torch\n\n\ndef f(x):\n    y = x * 2    # (B, L)\n    return y\n"


@pytest.mark.parametrize("why, record", [
    ("a shape of bytes", a_record(lines={5: [["y", [b"\x00", b"ab"]]]})),
    ("a shape of strings (ANSI)", a_record(lines={5: [["y", ["\x1b[2K\rTotal 150.0 / 150"]]]})),
    ("a size that is a float", a_record(returns={6: [2.0, 5]})),
    ("a size that is a bool", a_record(returns={6: [True, 5]})),
    ("a negative size", a_record(returns={6: [-1, 5]})),
    ("a huge size", a_record(returns={6: [10 ** 30, 5]})),
    ("a rank past the cap", a_record(returns={6: [1] * (narration.MAX_RANK + 1)})),
    ("a line number of bytes", a_record(order=[b"5"])),
    ("a line number that is a string", a_record(lines={"5": [["y", [2, 5]]]})),
    ("a name with escapes", a_record(lines={5: [["\x1b[31my", [2, 5]]]})),
    ("an error that is not a class name", a_record(error="Error\r\nTotal 150.0 / 150")),
    ("too many lines", a_record(executed=list(range(1, narration.MAX_RECORD_LINES + 2)))),
    ("too many tensors on a line", a_record(lines={5: [["y", [2, 5]]] * (narration.MAX_NAMES_PER_LINE + 1)})),
    ("a field of its own", a_record(extra=1)),
    ("not a table", [1, 2, 3]),
])
def test_a_record_that_is_not_plain_bounded_data_is_refused(why, record):
    with pytest.raises(narration.BadRecord):
        check_narration(SMALL, record, known_sizes(B=2, L=5))


def test_a_plain_record_passes_the_schema_unchanged():
    assert check_narration(SMALL, a_record(), known_sizes(B=2, L=5))["right"] == 1
    tuples = a_record(lines={5: (("y", (2, 5)),)}, order=(5, 6))          # the wire keeps tuples as tuples
    assert check_narration(SMALL, tuples, known_sizes(B=2, L=5))["right"] == 1


def test_many_ellipses_are_matched_in_polynomial_steps():
    # Twelve `...` against a rank-30 shape: 30+12 choose 12 (11 billion) ways to split the shape,
    # which the old matcher enumerated; the runs between them are placed left to right instead.
    dims = ["..."] * 12 + ["7"]
    steps = narration._Steps()
    ok, _, _ = narration._match(dims, [1] * 29 + [7], {}, steps)
    assert ok and steps.n <= len(dims) * 30
    steps = narration._Steps()
    ok, _, _ = narration._match(["...", "N", "...", "N", "..."] * 6 + ["9"], [1] * 31 + [8], {}, steps)
    assert not ok and steps.n <= 31 * 32 * 2
    # 10,000 `...` in one comment: not a shape (past MAX_DIMS), and fast to say so.
    assert parse_shape("# (" + ", ".join(["..."] * 10_000) + ", 7)") is None
    assert narration._match(["..."] * 10_000 + ["7"], [1] * 31 + [7], {}, narration._Steps())[0]


def test_several_ellipses_still_mean_what_they_say():
    m = narration._match
    assert m(["...", "1", "..."], [2, 1, 3], {}, None)[0]
    assert not m(["...", "1", "..."], [2, 3], {}, None)[0]
    assert m(["B", "...", "N", "...", "S"], [2, 4, 9, 7], {"B": 2, "S": 7, "N": 9}, None)[0]
    assert m(["...", "L", "...", "S"], [2, 5, 3, 7], {"L": 5, "S": 7}, None)[0]        # L placed where it fits
    assert not m(["...", "S", "...", "L"], [2, 5, 3, 7], {"L": 5, "S": 7}, None)[0]


def test_a_check_past_its_step_cap_is_a_bad_record_not_a_hang():
    steps = narration._Steps(most=10)
    with pytest.raises(narration.BadRecord):
        narration._match(["..."] + ["N"] * 5 + ["..."] + ["M"] * 5, [1] * 30, {}, steps)


def test_a_comment_of_escapes_or_a_flood_is_not_a_shape():
    assert parse_shape("# (B, \x1b[31mL)") is None
    assert parse_shape("# (B, L\r\nTotal 150.0 / 150)") is None
    assert parse_shape("# (" + "a" * 10_000 + ", L)") is None
    assert parse_shape("# (" + "*".join(["H"] * 100) + ", L)") is None          # past MAX_FACTORS
    assert parse_shape("# (B, L, " + " " * 100_000 + "x)") is None


def test_the_printed_line_is_one_printable_line_cut_to_its_cap():
    text = narration.printable("narration: \x1b[2K\r\nTotal 150.0 / 150\u202e\x07" + "x" * 5000)
    assert "\x1b" not in text and "\r" not in text and "\n" not in text and "\u202e" not in text
    assert len(text) <= narration.MAX_LINE_CHARS and text.endswith("[cut]")
    many = "".join(f"    y{i} = x * 2    # (B, L, {i})\n" for i in range(200))
    src = "import torch\n\n\ndef f(x):\n" + many + "    return x\n"
    record = {"lines": {5 + i: [[f"y{i}", [2, 5]]] for i in range(200)}, "order": list(range(5, 205)),
              "executed": list(range(5, 206))}
    result = check_narration(src, record, known_sizes(B=2, L=5))
    assert result["wrong_count"] == 200 and len(result["wrong"]) == narration.MAX_WRONG_KEPT
    assert len(result["line"]) <= narration.MAX_LINE_CHARS and "197 more wrong" in result["line"]


def odd_tensor_in(source, function, shape_expr, comment):
    """The reference with a local tensor whose `shape` is whatever the submission says: the grade
    never looks at it; only narration's tracer does."""
    import ast
    fn = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef) and n.name == function)
    at = fn.body[1].lineno                                      # after the docstring
    lines = source.split("\n")
    indent = " " * fn.body[1].col_offset
    lines.insert(at - 1, f"{indent}odd = torch.zeros(1).as_subclass(_Odd)    # {comment}")
    lines.insert(fn.lineno - 1, f"class _Odd(torch.Tensor):\n    @property\n    def shape(self):\n"
                                f"        return {shape_expr}\n\n")
    return "\n".join(lines)


def test_the_grader_reports_no_line_for_a_hostile_record_and_the_same_grade(tmp_path):
    """The three attacks of issue 19 through the sandbox: a shape of bytes (crashed the whole grade),
    a shape of ANSI escapes (printed a fake total), twelve `...` against a rank-30 shape (hung)."""
    from helpers import grade, submission
    ref = {n: (REPO / "solutions" / f"{n}.py").read_text() for n in ("02_split_heads", "05_softmax",
                                                                        "07_merge_heads")}
    files = {
        "07_merge_heads.py": odd_tensor_in(ref["07_merge_heads"], "merge_heads", "(b'\\x00', b'ab')", "(B, L)"),
        "02_split_heads.py": odd_tensor_in(ref["02_split_heads"], "split_heads",
                                           "('\\x1b[2K\\r\\nTotal 150.0 / 150\\x1b[8m',)", "(B, L)"),
        "05_softmax.py": odd_tensor_in(ref["05_softmax"], "softmax", "(1,) * 30",
                                       "(" + ", ".join(["..."] * 12) + ", 7)"),
        "03_scores.py": (REPO / "exercises" / "03_scores.py").read_text(),          # a stub: no comments
    }
    folder = submission(tmp_path, files)
    code, narrated, text = grade(folder, "02", "03", "05", "07", seed=5, extra=["--narrate"], timeout=120)
    assert narrated is not None, text                     # the bytes shape no longer kills the report
    code, plain, _ = grade(folder, "02", "05", "07", seed=5, timeout=120)
    by_id = {e["id"]: e for e in narrated["exercises"]}
    for e in plain["exercises"]:                           # narration changes nothing in the grade
        assert {k: v for k, v in by_id[e["id"]].items() if k != "narration"} == e
    assert [by_id[i]["score"] for i in ("02", "05", "07")] == [10.0, 10.0, 10.0]
    assert "narration" not in by_id["07"] and "narration" not in by_id["02"]     # bad records: no line
    assert "\x1b" not in text and "\r" not in text and text.count("Total ") == 1
    assert by_id["05"]["narration"]["wrong"][0]["line"] == line_of(files["05_softmax.py"], "odd = ")
    shown = [ln for ln in text.splitlines() if "narration:" in ln]
    assert len(shown) == 1 and len(shown[0].strip()) <= narration.MAX_LINE_CHARS
    assert by_id["03"]["narration"]["comments"] == 0     # a file without shape comments: no line shown


# -- issue 22: distinct sizes, the learner's own names, crashes ----------------------------------
def test_14s_query_and_key_tiles_differ_so_a_swapped_tile_name_is_caught(tmp_path):
    ref = (REPO / "solutions" / "14_flash_attention.py").read_text()
    says_bk = ref.replace("m_new = torch.maximum(m, s.amax(dim=-1))              # (B, H, Bq)",
                          "m_new = torch.maximum(m, s.amax(dim=-1))              # (B, H, Bk)")
    assert says_bk != ref
    results = {}
    for name, source in (("ref", ref), ("swapped", says_bk)):
        module, path = load(tmp_path, source, "flash_" + name)
        fn, args, kwargs, _ = narration.representative("14", module)
        record = record_shapes(fn, args, kwargs, path)
        results[name] = check_narration(source, record, narration.call_sizes("14"))
    assert results["ref"]["wrong"] == [] and results["ref"]["bindings"]["Bq"] != results["ref"]["bindings"]["Bk"]
    assert [w["line"] for w in results["swapped"]["wrong"]] == [line_of(says_bk, "# (B, H, Bk)")]
    assert "says (B, H, Bk), the tensor is (B, H, Bq)" in results["swapped"]["line"]


def test_every_exercise_gives_its_sizes_distinct_values_from_the_grader_side():
    for ex in range(1, 16):
        sizes = narration.call_sizes(ex)
        plain = {k: v for k, v in sizes.items() if k not in ("D", "d")}       # D = H * d_head, d = D in 12
        assert len(set(plain.values())) == len(plain), (ex, sizes)


UNPACKED = '''\
import torch


def merge(q):
    B, H, L, d = q.shape
    out = q.transpose(1, 2).reshape(B, L, H * d)     # (B, L, H*d)
    wrong = q.transpose(1, 2)                        # (B, H, L, d)
    return out
'''


def test_names_the_learner_unpacks_from_a_shape_mean_their_sizes(tmp_path):
    module, path = load(tmp_path, UNPACKED)
    record = record_shapes(module.merge, (torch.zeros(4, 6, 5, 11),), {}, path)
    assert record["sizes"][line_of(UNPACKED, "= q.shape")] == [["B", 4], ["H", 6], ["L", 5], ["d", 11]]
    # 11's sizes name H_q and H_kv, never H: H is the learner's own, bound by their unpacking.
    result = check_narration(UNPACKED, record, narration.call_sizes("11") | {"B": 4, "L": 5})
    assert [w["line"] for w in result["wrong"]] == [line_of(UNPACKED, "wrong = ")], result
    assert result["right"] == 1 and result["bindings"]["H"] == 6 and result["bindings"]["d"] == 11
    assert "the tensor is (B, L, H, d)" in result["line"]


def test_a_size_the_learner_computes_means_its_value(tmp_path):
    src = textwrap.dedent('''\
        import torch


        def f(x, num_heads):
            D = x.shape[-1]
            d = D // num_heads
            y = x.unflatten(-1, (num_heads, d))     # (B, L, H, d)
            z = y.flatten(-2)                       # (B, L, H*d)
            bad = x.unflatten(-1, (d, num_heads))   # (B, L, H, d)
            return z
        ''')
    module, path = load(tmp_path, src)
    result = check_narration(src, record_shapes(module.f, (torch.zeros(2, 5, 33), 3), {}, path),
                             known_sizes(B=2, L=5, H=3))
    assert result["bindings"]["d"] == 11 and result["right"] == 2, result
    assert [w["line"] for w in result["wrong"]] == [line_of(src, "bad = ")]


def test_a_contract_size_wins_over_a_learner_name_that_disagrees(tmp_path):
    src = UNPACKED.replace("B, H, L, d = q.shape", "B, L, H, d = q.shape")    # H and L swapped
    module, path = load(tmp_path, src)
    record = record_shapes(module.merge, (torch.zeros(2, 3, 5, 11),), {}, path)
    result = check_narration(src, record, known_sizes(B=2, H=3, L=5))
    assert result["bindings"]["H"] == 3 and result["bindings"]["L"] == 5 and result["bindings"]["d"] == 11


CRASHES = '''\
import torch


def f(x):
    y = x * 2                 # (B, L)
    z = y.view(3, 7)          # (L, B)
    w = z + 1                 # (L, B)
    return w
'''


def test_a_line_that_crashed_is_named_as_such(tmp_path):
    module, path = load(tmp_path, CRASHES)
    record = record_shapes(module.f, (torch.zeros(2, 5),), {}, path)
    assert record["error"] == "RuntimeError" and record["error_line"] == line_of(CRASHES, "y.view")
    result = check_narration(CRASHES, record, known_sizes(B=2, L=5))
    assert result["crashed"] == [line_of(CRASHES, "y.view")] and result["not_tensor"] == []
    assert result["not_run"] == [line_of(CRASHES, "w = z")]
    assert f"line {line_of(CRASHES, 'y.view')} raised RuntimeError" in result["line"]
    assert "no tensor is assigned" not in result["line"]


def test_an_exception_handled_inside_is_no_crash_and_a_crash_in_a_helper_names_the_helper_line(tmp_path):
    src = textwrap.dedent('''\
        import torch


        def helper(t):
            return t.view(3, 7)       # (L, B)


        def f(x):
            try:
                x.view(3, 7)
            except RuntimeError:
                pass
            y = x * 2                 # (B, L)
            z = helper(y)             # (L, B)
            return z
        ''')
    module, path = load(tmp_path, src)
    record = record_shapes(module.f, (torch.zeros(2, 5),), {}, path)
    assert record["error_line"] == line_of(src, "return t.view")
    result = check_narration(src, record, known_sizes(B=2, L=5))
    assert result["right"] == 1 and result["crashed"] == [line_of(src, "return t.view")]


@pytest.mark.skipif(not __import__("shutil").which("make"), reason="needs make")
def test_make_grade_narrates():
    out = subprocess.run(["make", "-n", "grade", "EX=07", "STAMP="], cwd=REPO, capture_output=True, text=True)
    words = out.stdout.split()
    assert words[1:4] == ["-m", "grader", "07"] and "--narrate" in words[:words.index("||")], out.stdout + out.stderr


@pytest.mark.skipif(not __import__("shutil").which("git"), reason="needs git")
def test_blank_prints_the_blank_stub_not_the_learners_solved_file(tmp_path, capsys):
    from grader import blank
    name = "09_scaled_dot_product_attention.py"
    stub, solved = (REPO / "exercises" / name).read_text(), (REPO / "solutions" / name).read_text()
    (tmp_path / "exercises").mkdir()
    (tmp_path / "exercises" / name).write_text(stub)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "."], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "course"], cwd=tmp_path, check=True)
    (tmp_path / "exercises" / name).write_text(solved)                  # the learner's work, saved
    assert blank.main(["09"], repo=tmp_path) == 0
    assert capsys.readouterr().out == f"# ---- {name} (blank)\n{blank.blank_stub(stub)}\n"
    subprocess.run([*git, "commit", "-qam", "my solution"], cwd=tmp_path, check=True)   # and committed
    assert blank.main(["09"], repo=tmp_path) == 0
    assert capsys.readouterr().out == f"# ---- {name} (blank)\n{blank.blank_stub(stub)}\n"
    subprocess.run(["rm", "-rf", str(tmp_path / ".git")], check=True)   # no history: say so, print nothing
    assert blank.main(["09"], repo=tmp_path) == 2
    out = capsys.readouterr()
    assert out.out == "" and "no stub of 09_scaled_dot_product_attention.py found" in out.err


def test_a_flood_of_comments_and_symbols_is_bounded_work():
    # 1000 lines bind 20 fresh symbols each (20,000 in all), then 1000 lines are wrong, with
    # products: the work stays bounded (a step cap past which the check gives up).
    rows, record = [], {"lines": {}, "order": [], "executed": []}
    for i in range(2000):
        if i < 1000:
            dims, shape = ", ".join(f"s{20 * i + j}" for j in range(20)), [1] * 20
        else:
            dims, shape = ", ".join(f"s{j}*s{j + 1}" for j in range(20)), [2] * 20
        rows.append(f"    y{i} = x    # ({dims})\n")
        record["lines"][2 + i] = [[f"y{i}", shape]]
        record["order"].append(2 + i)
    src = "def f(x):\n" + "".join(rows) + "    return x\n"
    assert len(narration.shape_comments(src)) == 2000
    try:
        result = check_narration(src, record, {})
    except narration.BadRecord as e:
        assert "steps" in str(e)
        return
    assert result["right"] == 1000 and result["wrong_count"] == 1000
    assert len(result["wrong"]) == narration.MAX_WRONG_KEPT and len(result["bindings"]) <= 64


def test_a_crash_on_a_line_without_a_comment_is_still_told(tmp_path):
    src = CRASHES.replace("    z = y.view(3, 7)          # (L, B)", "    z = y.view(3, 7)")
    module, path = load(tmp_path, src)
    result = check_narration(src, record_shapes(module.f, (torch.zeros(2, 5),), {}, path), known_sizes(B=2, L=5))
    assert result["crashed"] == [] and result["not_run"] == [line_of(src, "w = z")]
    assert result["line"].endswith(f"the call raised RuntimeError at line {line_of(src, 'y.view')}; "
                                   f"1 annotated line did not run")


def test_the_grader_reports_the_same_narration_as_an_ordinary_user(tmp_path):
    """The sandbox's layers differ for an ordinary user; narration's tracer and its checks must not."""
    import os
    import shutil
    import tempfile
    from test_cheats import _ancestors, _student_prefix
    prefix, why = _student_prefix()
    if prefix is None:
        pytest.skip(why)
    if any(not os.stat(p).st_mode & 0o005 for p in [*_ancestors(str(REPO)), str(REPO)]):
        pytest.skip("the repository is not readable by an ordinary user here")
    folder = Path(tempfile.mkdtemp(prefix="narration-user-", dir="/tmp"))
    try:
        ref = {n: (REPO / "solutions" / f"{n}.py").read_text() for n in ("03_scores", "07_merge_heads")}
        (folder / "07_merge_heads.py").write_text(odd_tensor_in(ref["07_merge_heads"], "merge_heads",
                                                                "('\\x1b[2K\\r\\nTotal 150.0 / 150',)", "(B, L)"))
        (folder / "03_scores.py").write_text(odd_tensor_in(ref["03_scores"], "attention_scores", "(1,) * 30",
                                                           "(" + ", ".join(["..."] * 12) + ", 7)"))
        folder.chmod(0o755)
        for f in folder.iterdir():
            f.chmod(0o644)
        out = subprocess.run(prefix + [sys.executable, "-m", "grader", "03", "07", "--path", str(folder), "--seed", "5",
                                       "--narrate"], cwd=REPO, capture_output=True, text=True, timeout=240,
                             env={**os.environ, "NO_COLOR": "1"})
    finally:
        shutil.rmtree(folder)
    text = out.stdout
    assert out.returncode == 0 and "Total 20 / 20" in text, text + out.stderr
    assert "\x1b" not in text and "\r" not in text and text.count("Total ") == 1
    shown = [ln.strip() for ln in text.splitlines() if "narration:" in ln]
    assert len(shown) == 1 and "says (..., ..., ..., ..., ..., ..., ..., ..., ..., ..., ..., ..., 7)" in shown[0]


def test_a_sentinel_number_in_the_learners_code_costs_nothing(tmp_path):
    src = "import torch\n\n\ndef f(x):\n    big = -2 ** 63\n    B, L = x.shape\n    y = x * 2    # (B, L)\n    return y\n"
    module, path = load(tmp_path, src)
    record = record_shapes(module.f, (torch.zeros(2, 5),), {}, path)
    assert check_narration(src, record, {})["right"] == 1 and "big" not in str(record["sizes"])
