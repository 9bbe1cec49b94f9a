"""What a hidden test uses: `graded`, `close`, `raises`, `Mistake`, `fail`, and input makers
(what a wrong value looks like, when no mistake names it, is grader/diagnosis.py).

A test receives `ex` (the submission: `ex.softmax(x)` runs the learner's `softmax` in the
sandbox and returns a plain tensor) and `rng` (a torch.Generator seeded from the run's seed
and the test's name). Every comparison happens here, in the grader's process.
"""
from dataclasses import dataclass
import ast
import inspect
import re
import sys
from typing import Callable, Optional

import numpy as np
import torch

from . import attention_errors
from .diagnosis import (FLOAT32_PATH, _attended_shape, _dt, _nan_hint, _where_wrong, error_shape, float32_described,
                        float32_path)
from .attention_errors import Attending, attention_with_key_weights  # noqa: F401 (for test modules)
from .exercises import CATEGORIES

# (rtol, atol) by dtype; `magnitude` scales atol where values are sums of large terms.
TOLERANCE = {torch.float64: (1e-6, 1e-8), torch.float32: (2e-4, 2e-5),
             torch.float16: (1e-2, 2e-3), torch.bfloat16: (4e-2, 1.6e-2)}


class Fail(AssertionError):
    """A check failed; the message is what the learner reads.

    on: what the failed check looked at: "type", "shape", "dtype", "values", or None for the test's own
        property (a test whose property is not the values, e.g. shapes or rules, is then "not checked").
    mistake: the key of the catalogued Mistake the failure was matched to, or None.
    """

    def __init__(self, message, on=None, mistake=None):
        super().__init__(message)
        self.on = on
        self.mistake = mistake


def fail(message, on=None, mistake=None):
    """Fails the test. `mistake`: a Mistake (or its key) this failure is known to be; its explanation
    is appended to the message when given as a Mistake."""
    if isinstance(mistake, Mistake):
        message, mistake = message.rstrip() + "\n  " + mistake.explain(), mistake.key
    raise Fail(message, on, mistake)


# What a test's property is, by category, when @graded does not say: the checks whose failure fails
# the test. Any other failed check means the property could not be checked ("not checked").
# A work test measures (operations, memory, blocks visited); a wrong value met on the way leaves it
# "not checked".
PROPERTY = {"shapes": ("type", "shape", "dtype"), "rules": (), "work": ()}


def graded(category, points, checks=None):
    """Marks a hidden test: its category (one of CATEGORIES) and the points it is worth.

    checks: the one property the test checks, when the category does not say it, e.g. "memory" or
        "work" for a test that first checks the values, then measures: a wrong value then leaves the
        property "not checked" instead of failing it.
    """
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}")

    def mark(fn):
        fn.grade = (category, float(points))
        fn.checks = checks
        return fn
    return mark


@dataclass
class Mistake:
    """A known wrong way to write `function`: `wrong` computes its output from the same arguments.

    key: the mistake's name in the catalogue ("no_max_subtracted"): it travels in the test result and
        the JSON report (`tests[].mistake`), and hint sections are keyed on it (`## when: no_max_subtracted`).
        Defaults to the title reduced to lowercase words joined by underscores.
    wrong: None for a mistake that a test recognises by itself (and names with fail(..., mistake=M)).
    """
    function: str
    title: str      # what the learner did: "no scaling by 1/sqrt(d_k)"
    step: str       # the checklist step it breaks: "3. Scores: Q @ K^T / sqrt(d_k)"
    fix: str        # how to fix it, and why
    wrong: Optional[Callable] = None
    key: str = ""

    def __post_init__(self):
        if not self.key:
            self.key = slug(self.title)

    def explain(self):
        return f"This looks like a known mistake: {self.title}.\n  Step {self.step}. {self.fix}"


def slug(text):
    """A title as a key: "the bias is dropped (no b_q)" -> "bias_is_dropped"; at most seven words."""
    text = re.sub(r"\([^()]*\)", " ", text.lower())
    words = re.findall(r"[a-z0-9]+", text)
    if words[:1] == ["the"] and len(words) > 1:
        words = words[1:]
    return "_".join(words[:7])


# -- making inputs ---------------------------------------------------------------------------
def randn(rng, *shape, dtype=torch.float32, scale=1.0):
    return (torch.randn(*shape, generator=rng, dtype=torch.float64) * scale).to(dtype)


def broadcast_shape(*shapes):
    """torch.broadcast_shapes, without what its first call costs: an import of sympy, 0.9 s in
    every grading process."""
    return torch.Size(np.broadcast_shapes(*map(tuple, shapes)))


def randint(rng, low, high):
    return int(torch.randint(low, high, (1,), generator=rng))


def choice(rng, options):
    return options[randint(rng, 0, len(options))]


def describe(value):
    """A short description of an argument, for messages."""
    if isinstance(value, torch.Tensor):
        return f"{tuple(value.shape)} {str(value.dtype).removeprefix('torch.')}"
    if isinstance(value, np.ndarray):
        return f"{value.shape} {value.dtype}"
    if isinstance(value, (list, tuple)) and len(value) > 4:
        return f"{type(value).__name__} of {len(value)}"
    return repr(value)


def describe_call(call, ex=None):
    """`decode(q=(1, 3, 10, 2) float64, ..., chunks=[6, 1, 1], max_len=10)`: parameter names where known
    (the learner's own signature, or a probe's), None arguments left out."""
    if not call:
        return "your code"
    name, args, kwargs = call
    names = param_names(ex, name) if ex is not None else []
    parts = []
    for i, a in enumerate(args):
        label = names[i] if i < len(names) else None
        if a is None and label:
            continue
        parts.append(f"{label}={describe(a)}" if label else describe(a))
    parts += [f"{k}={describe(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


_PARAMS = {}


def param_names(ex, name):
    """The positional parameter names of `name`: a probe of the exercise's test module (less its
    `module`), or a function or class of the learner's file, read from its source."""
    test_file = str(getattr(getattr(ex, "exercise", None), "test_module", ""))
    source = getattr(ex, "source", None)
    memo = (test_file, name, hash(source))
    if memo in _PARAMS:
        return _PARAMS[memo]
    found = []
    module = next((m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == test_file), None)
    probe = getattr(module, name, None) if module is not None else None
    if callable(probe) and getattr(probe, "__module__", None) == module.__name__:
        try:
            found = [p.name for p in inspect.signature(probe).parameters.values()
                     if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][1:]
        except (TypeError, ValueError):
            found = []
    elif source:
        try:
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.FunctionDef) and node.name == name:
                    found = [a.arg for a in node.args.posonlyargs + node.args.args]
                    break
                if isinstance(node, ast.ClassDef) and node.name == name:
                    init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"),
                                None)
                    found = [a.arg for a in init.args.posonlyargs + init.args.args][1:] if init else []
                    break
        except (SyntaxError, ValueError):
            found = []
    _PARAMS[memo] = found
    return found


def inplace_line(ex, function, param):
    """(number, text) of the first line of the learner's `function` that looks like it modifies `param`
    in place, or None."""
    source = getattr(ex, "source", None)
    if not source:
        return None
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    fn = next((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function), None)
    if fn is None:
        return None
    lines = source.splitlines()
    p = re.escape(param)
    pattern = re.compile(rf"\b{p}\s*(\[[^\]]*\]\s*)?([-+*/@]?=)(?!=)|\b{p}(\[[^\]]*\])?\.\w+_\(")
    for number in range(fn.lineno, (fn.end_lineno or fn.lineno) + 1):
        text = lines[number - 1].split("#")[0]
        m = pattern.search(text)
        if m and not (m.group(2) == "=" and m.group(1) is None):     # plain `x = ...` rebinds: fine
            return number, text.strip()
    return None


# -- comparing -------------------------------------------------------------------------------
def as_tensor(actual, what="the result"):
    """The result as a plain tensor, or a failure that says what came back instead."""
    if isinstance(actual, np.ndarray):
        return torch.from_numpy(actual)
    if not isinstance(actual, torch.Tensor):
        # a type the sandbox would not send as data (a subclass, an object posing as a tensor)
        name = getattr(actual, "type_name", None) or type(actual).__name__
        fail(f"{what} should be a torch.Tensor, but your code returned {name}"
             + (f" {actual!r}"[:80] if actual is None or isinstance(actual, (int, float)) else "")
             + (": return the tensor itself, exactly a torch.Tensor" if hasattr(actual, "type_name") else ""))
    return actual


def close(actual, expected, ex=None, **options):
    """Fails, with a diagnosis, unless `actual` matches `expected` within the dtype's tolerance.

    expected: the right answer, at any precision (float64 is best).
    dtype: the dtype the result must have (default: expected's).
    part: which element of a tuple-returning call this is (for matching known mistakes).
    magnitude: a tensor broadcastable to expected, the size of the terms summed into each
        entry (|q| @ |k|ᵀ for scores), which widens atol where cancellation is expected.
    mask: compare only where True (e.g. rows that see at least one key).
    attending: an attention_errors.Attending when the result is attention: with no catalogued mistake
        matching, the keys the learner's output really attended to are searched for and named.
    """
    try:
        _compare(actual, expected, ex, **options)
    except Fail:
        if ex is not None:
            ex.outcomes.append((ex.last_call, False))
        raise
    if ex is not None:
        ex.outcomes.append((ex.last_call, True))


def shaped(actual, shape, dtype, ex=None, what="the result", part=None):
    """Fails unless `actual` is a tensor of `shape` and `dtype`, whatever its values: a shapes test's
    whole property. part: which element of a tuple-returning call it is (for naming a known mistake)."""
    call = ex.last_call if ex is not None else None
    where = describe_call(call, ex)
    try:
        actual = as_tensor(actual, f"{what} of {where}")
    except Fail as e:
        e.on = "type"
        raise
    if tuple(actual.shape) != tuple(shape):
        _fail_named(f"{where}: {what} has the wrong shape: expected {tuple(shape)}, got {tuple(actual.shape)}.",
                    "shape", _known_mistake(ex, call, actual, part, None, 0, 0))
    if actual.dtype != dtype:
        fail(f"{where}: {what} should keep the input's dtype {_dt(dtype)}, but is {_dt(actual.dtype)}. "
             "Compute in a wider type if you like, then cast back.", "dtype")
    return actual


def agrees(actual, call, own, relation, ex, part=None, finite=False, **options):
    """Fails unless `actual` (what the learner's `call` returned) equals `own` (the learner's own result
    on related inputs) within the tolerance of `dtype`: a relation that holds whatever the values, so
    that a wrong value elsewhere does not fail it. NaN where both have NaN agrees, unless `finite`.

    relation: what the two results share, for the message ("equals your own float64 result, rounded").
    part: which element of a tuple-returning call `actual` is (for naming a known mistake).
    options: as for `close` (dtype, magnitude, mask, what).
    """
    where = describe_call(call, ex)
    try:
        actual = as_tensor(actual, f"{options.get('what') or 'the result'} of {where}")
        own = as_tensor(own, "your own result")
        dtype = options.get("dtype") or own.dtype
        known = lambda: _known_mistake(ex, call, actual, part, *TOLERANCE.get(dtype, (1e-6, 1e-8)),  # noqa: E731
                                       options.get("magnitude"))
        if finite and actual.is_floating_point() and not torch.isfinite(actual).all():
            bad = ~torch.isfinite(actual)
            _fail_named(f"{where}: {options.get('what') or 'the result'} holds NaN or inf in {int(bad.sum())} of "
                        f"{bad.numel()} entries (first at {[int(i) for i in bad.nonzero()[0]]}).", "values", known())
        size = options.get("magnitude")
        if size is not None:
            try:
                broadcast_shape(torch.as_tensor(size).shape, own.shape)
            except ValueError:      # the learner's own results have another shape: the largest term for all
                options["magnitude"] = torch.as_tensor(size, dtype=torch.float64).abs().amax()
        if own.is_floating_point() and actual.shape == own.shape and actual.is_floating_point():
            broken = ~own.isfinite() & actual.to(own.dtype).isfinite()
            if broken.any():        # the failure is the related result's: no mistake of this one is named
                _fail_named(f"{where} {relation}; but your own result there holds NaN or inf in "
                            f"{int(broken.sum())} entries where this one is finite (first at "
                            f"{[int(i) for i in broken.nonzero()[0]]}).", "values", None)
            both = own.isnan() & actual.to(own.dtype).isnan()
            own = torch.where(both, torch.zeros((), dtype=own.dtype), own)
            actual = torch.where(both, torch.zeros((), dtype=actual.dtype), actual)
        _compare(actual, own, None, **options)
    except Fail as e:
        if e.mistake or not str(e).startswith("your code: "):
            raise
        text = str(e).removeprefix("your code: ")
        mistake = known() if e.on == "values" else None
        message = f"{where} {relation}; but {text[:1].lower() + text[1:]}"
        _fail_named(message, e.on, mistake)


def keys_hidden(ex, attend, k, v, blocked, what="out", rows=None):
    """Fails unless the learner's attention counts exactly the keys the mask leaves visible: changing
    key j and its value must leave every query that the mask blocks from j as it was, and change every
    query that sees j. A relation on the learner's own function: a wrong value elsewhere (a scale, a
    projection) does not fail it.

    attend(k, v): calls the learner's code with these keys and values (the rest fixed) and returns its
        output (..., L, d_v), or a tuple whose first element it is.
    blocked: bool, broadcastable to (..., L, S), True = blocked. Rows that see no key are left out
        (any finite answer will do there). Use float64 inputs: a blocked key counts for exactly nothing.
    rows: bool (..., L), the query rows judged for leaks (default: those that see some key).
    """
    def run(keys, values):
        out = attend(keys, values)
        out = out[0] if isinstance(out, (tuple, list)) and out else out
        return as_tensor(out, what)
    first = attend(k, v)
    call = ex.last_call
    part = 0 if isinstance(first, (tuple, list)) else None
    kept = as_tensor(first[0] if part == 0 and first else first, what)
    base = kept.to(torch.float64)
    S = k.shape[-2]
    blocked = torch.as_tensor(blocked).expand(*base.shape[:-1], S)
    sees = ~blocked.all(-1) if rows is None else torch.as_tensor(rows).expand(blocked.shape[:-1])
    for j in range(S):
        k2, v2 = k.clone(), v.clone()
        k2[..., j, :] += 1.0
        v2[..., j, :] -= 1e3
        out = run(k2, v2).to(torch.float64)
        if out.shape != base.shape:
            fail(f"{describe_call(call, ex)}: {what} changed shape from {tuple(base.shape)} to {tuple(out.shape)} "
                 f"when key {j} changed.", on="shape")
        changed = ((out - base).abs() > 1e-9 * (1 + base.abs())).any(-1) | (out.isnan() != base.isnan()).any(-1)
        leak, deaf = changed & blocked[..., j] & sees, ~changed & ~blocked[..., j]
        for wrong, said in ((leak, "changed {what} at {n} queries that the mask blocks from it (first at {at}): a "
                                   "blocked key must count for nothing"),
                            (deaf, "left {what} unchanged at {n} queries that see it (first at {at}): a key the mask "
                                   "leaves visible must count")):
            if wrong.any():
                at = [int(i) for i in wrong.nonzero()[0]]
                # the catalogued mistake whose output the learner's gives on the first call, if any: only
                # where the result kept float64, where a model can be confirmed to float64's precision
                known = _known_mistake(ex, call, kept, part, *TOLERANCE[torch.float64], None) \
                    if kept.dtype == torch.float64 else None
                _fail_named(f"{describe_call(call, ex)}: changing key {j} and its value "
                            + said.format(what=what, n=int(wrong.sum()), at=at) + ".", None, known)


def _wide(value):
    if isinstance(value, (list, tuple)):
        return type(value)(map(_wide, value))
    return value.to(torch.float64) if isinstance(value, torch.Tensor) and value.is_floating_point() else value


def rounds_own_float64(ex, function, *args, dtype, parts=None, magnitude=None, **kwargs):
    """Calls the learner's `function` (or runs a probe) on half-precision inputs, then on the same inputs in
    float64, and
    fails unless the first result keeps `dtype`, is finite and equals the second rounded, within the
    dtype's tolerance: half precision checked on its own, whatever the values. A tuple result is
    compared element by element (`parts`: which ones). Returns the half-precision result."""
    call_it = getattr(ex, function) if isinstance(function, str) else (lambda *a, **k: ex.run(function, *a, **k))
    half = call_it(*args, **kwargs)
    call = ex.last_call
    wide = call_it(*map(_wide, args), **{k: _wide(v) for k, v in kwargs.items()})
    single = not isinstance(half, (tuple, list))
    halves, wides = ((half,), (wide,)) if single else (half, wide if isinstance(wide, (tuple, list)) else (wide,))
    for i, (h, w) in enumerate(zip(halves, wides)):
        if parts is None or i in parts:
            agrees(h, call, w, f"in {_dt(dtype)} should give your own float64 result, rounded", ex, dtype=dtype,
                   part=None if single else i, finite=True,
                   magnitude=magnitude if single or magnitude is None else magnitude[i],
                   what="the result" if single else f"output {i}")
    return half


def _compare(actual, expected, ex, *, dtype=None, part=None, what=None, magnitude=None,
             rtol=None, atol=None, mask=None, attending=None):
    call = ex.last_call if ex is not None else None
    what = what or ("the result" if part is None else f"output {part}")
    where = describe_call(call, ex)
    expected = torch.as_tensor(expected)
    dtype = dtype or expected.dtype
    try:
        actual = as_tensor(actual, f"{what} of {where}")
    except Fail as e:
        e.on = "type"
        raise
    if tuple(actual.shape) != tuple(expected.shape):
        _fail_named(f"{where}: {what} has the wrong shape: expected {tuple(expected.shape)}, got "
                    f"{tuple(actual.shape)}.", "shape", _known_mistake(ex, call, actual, part, None, 0, 0))
    if actual.dtype != dtype:
        _fail_named(f"{where}: {what} should keep the input's dtype {_dt(dtype)}, but is {_dt(actual.dtype)}. "
                    "Compute in a wider type if you like, then cast back.", "dtype",
                    _known_mistake(ex, call, actual, part, *TOLERANCE.get(actual.dtype, (1e-6, 1e-8)), None,
                                   dtype_only=True))
    default_rtol, default_atol = TOLERANCE.get(dtype, (0, 0))
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    a = actual.to(torch.float64) if actual.is_floating_point() else actual
    e = expected.to(torch.float64) if expected.is_floating_point() else expected.to(actual.dtype)
    select = torch.ones_like(e, dtype=torch.bool) if mask is None else torch.as_tensor(mask).expand(e.shape)
    if a.is_floating_point() or a.is_complex():
        bad_finite = ~torch.isfinite(a) & torch.isfinite(e) & select
        if bad_finite.any():
            idx = tuple(int(i) for i in bad_finite.nonzero()[0])
            kind = "NaN" if torch.isnan(a[idx]) else "inf"
            row = f"row {list(idx[:-1])}" if len(idx) > 1 else f"index {list(idx)}"
            worst = float32_path(a, e, select, dtype)
            if worst is not None:
                raise Fail(f"{where}: {what} holds {kind} (first in {row}, {int(bad_finite.sum())} entries in all) "
                           "where a finite value is expected.\n  " + "\n  ".join(float32_described(worst, nan=True)),
                           "values", FLOAT32_PATH)
            known = _known_mistake(ex, call, actual, part, rtol, atol, magnitude, select)
            _fail_named(f"{where}: {what} holds {kind} (first in {row}, {int(bad_finite.sum())} entries in all) "
                        f"where a finite value is expected." + ("" if known else _nan_hint(dtype, call)),
                        "values", known)
        tol = atol * (1 + (torch.as_tensor(magnitude, dtype=torch.float64).abs() if magnitude is not None else 0))
        tol = torch.where(torch.isfinite(e), tol + rtol * e.abs(), 0.0)   # an infinity must be matched exactly
        err = torch.where(torch.isfinite(e), (a - e).abs(), torch.where(a == e, 0.0, float("inf")))
        bad = (err > tol) & select
    else:
        bad = (a != e) & select
        err = bad.to(torch.float64)
        tol = torch.zeros_like(err)
        rtol = atol = 0.0
    if not bad.any():
        return
    flat = int(torch.where(bad, err - tol, torch.tensor(-1.0, dtype=torch.float64)).flatten().argmax())
    idx = tuple(int(i) for i in np.unravel_index(flat, tuple(e.shape)))
    lines = [f"{where}: {what} differs from the expected values in {int(bad.sum())} of {bad.numel()} entries."]
    if a.is_floating_point():
        lines.append(f"  Largest error {float(err[idx]):.3g} at {list(idx)}: expected {float(e[idx]):.6g}, "
                     f"got {float(a[idx]):.6g} (tolerance there {float(tol[idx]):.2g}: {atol:.0e}"
                     f"{'·(1 + magnitude)' if magnitude is not None else ''} + {rtol:.0e}·|expected|).")
    else:
        lines.append(f"  First difference at {list(idx)}: expected {e[idx].item()}, got {a[idx].item()}.")
    worst = float32_path(a, e, select, dtype) if a.is_floating_point() else None
    known = None if worst is not None else _known_mistake(ex, call, actual, part, rtol, atol, magnitude, select)
    pattern = _where_wrong(bad, e.dim())
    if pattern and not (known and pattern.endswith("everywhere.")):
        lines.append("  " + pattern)
    if worst is not None:
        lines += ["  " + line for line in float32_described(worst)]
        raise Fail("\n".join(lines), "values", FLOAT32_PATH)
    if not known and attending is not None:
        shape = _attended_shape(attending, a, tol - rtol * e.abs(), rtol, select)
        if shape is not None:
            lines += ["  " + line for line in attention_errors.described(shape)]
            raise Fail("\n".join(lines), "values", shape.key)
    if not known:
        lines += ["  " + line for line in error_shape(a, e, bad, select, dtype, call, attention=attending is not None)]
    _fail_named("\n".join(lines), "values", known)


def _fail_named(message, on, mistake):
    """Fails with `message`, followed by the explanation of `mistake` (a Mistake or None)."""
    if mistake is not None:
        message += "\n  " + mistake.explain()
    raise Fail(message, on, mistake.key if mistake is not None else None)


def _known_mistake(ex, call, actual, part, rtol, atol, magnitude, select=None, dtype_only=False):
    """Names the catalogued mistake whose output equals the learner's, if any.

    rtol None: only the shape is known to be wrong, so a mistake of the same shape is named.
    dtype_only: the dtype is wrong, so the mistake must give the learner's dtype.
    select: compare only there (the entries the check grades).
    """
    if ex is None or call is None:
        return None
    name, args, kwargs = call
    for m in ex.mistakes:
        if m.function != name or m.wrong is None:
            continue
        try:
            wrong = m.wrong(*args, **kwargs)
            if part is not None:
                wrong = wrong[part]
            wrong = torch.as_tensor(wrong)
            if tuple(wrong.shape) != tuple(actual.shape) or dtype_only and wrong.dtype != actual.dtype:
                continue
            if rtol is None:
                return m
            w, a = wrong.to(torch.float64), actual.to(torch.float64)
            tol = atol * (1 + (torch.as_tensor(magnitude, dtype=torch.float64).abs() if magnitude is not None else 0))
            # Where the wrong answer is infinite, only the same infinity matches it.
            tol = torch.where(torch.isfinite(w), tol + rtol * w.abs(), 0.0)
            same = ((a - w).abs() <= tol) | (torch.isnan(a) & torch.isnan(w)) | (a == w)
            if select is not None:
                same = same | ~select
            if bool(same.all()) and (actual.dtype != torch.float64 or _confirmed(a, w, tol, select)):
                return m
        except Exception:
            continue
    return None


def _said(error):
    """An error's words without its numbers: what two raises of one mistake on other sizes share."""
    return re.sub(r"\d+", "#", str(error).splitlines()[0] if str(error) else "").strip()


def crash_mistake(ex, error, call=None):
    """The catalogued mistake confirmed by a crash: the one whose model raises the same error (its type and
    words, numbers aside) on the call that crashed. A mistake is not named for a crash its model does not
    reproduce: a `k.T` that runs, or a crash of another kind, is described as it is instead."""
    if ex is None or getattr(error, "kind", None) != "raised":
        return None
    name, args, kwargs = call or ex.last_call or (None, (), {})
    for m in ex.mistakes:
        if m.function != name or m.wrong is None:
            continue
        try:
            m.wrong(*args, **kwargs)
        except Exception as e:      # noqa: BLE001 (the model's own crash is the signature)
            if _said(f"{type(e).__name__}: {e}") == _said(error.message):
                return m
    return None


def _confirmed(a, w, tol, select):
    """Whether a float64 result is the mistake's model to float64's precision, not only within the test's
    tolerance: a float64 model and a float64 computation of the same slip agree to about 1e-15, so a result
    that is the model only to 1e-7 took another path (float32 somewhere) and is not confirmed as that slip."""
    tight = torch.where(torch.isfinite(w), 1e-3 * tol, 0.0)
    same = ((a - w).abs() <= tight) | (torch.isnan(a) & torch.isnan(w)) | (a == w)
    return bool((same | ~select).all()) if select is not None else bool(same.all())


def raises(ex, exc_name, function, *args, why="", **kwargs):
    """Fails unless the learner's `function(*args, **kwargs)` raises `exc_name` (or a subclass)."""
    from .sandbox import SubmissionError
    call = (function, args, kwargs)
    if isinstance(getattr(ex, "expected_errors", None), set):
        ex.expected_errors.add(exc_name)
    try:
        result = getattr(ex, function)(*args, **kwargs)
    except SubmissionError as e:
        if e.kind in ("raised",) and exc_name in e.exc_types:
            return
        if e.kind == "raised":
            fail(f"{describe_call(call, ex)} should raise {exc_name}{why}, but raised {e.message}"
                 + (f" ({e.where})" if e.where else ""))
        raise
    fail(f"{describe_call(call, ex)} should raise {exc_name}{why}, but returned "
         f"{describe(result) if isinstance(result, torch.Tensor) else type(result).__name__}")


def unchanged_inputs(ex, function, *args, **kwargs):
    """Calls the learner's `function` and fails if it modified a tensor argument in place."""
    from .sandbox import call_keeping_inputs
    result, args_after, kwargs_after = ex.run(call_keeping_inputs, function, *args, **kwargs)
    ex.last_call = (function, args, kwargs)
    before = list(args) + list(kwargs.values())
    after = list(args_after) + list(kwargs_after.values())
    names = param_names(ex, function)
    for i, (b, a) in enumerate(zip(before, after)):
        if isinstance(b, torch.Tensor) and not torch.equal(torch.as_tensor(a), b):
            name = list(kwargs)[i - len(args)] if i >= len(args) else (
                names[i] if i < len(names) else f"argument {i + 1}")
            line = inplace_line(ex, function, name)
            where = f" at line {line[0]}: {line[1]}" if line else ""
            fail(f"{describe_call(ex.last_call, ex)} modified its input `{name}` in place{where}. Return a new "
                 f"tensor: no `{name} -= ...`, `{name}.masked_fill_(...)` or `{name}[...] = ...` on an input.")
    return result


# What a Python loop over an axis looks like, and what replaces it.
LOOPS = {
    "B": ("a loop over the batch", "one operation over the batch axis does it (matmul and every elementwise "
          "operation take leading axes)"),
    "H": ("a loop over heads", "one matmul over the head axis does it"),
    "L": ("a loop over query positions", "one matmul over all the queries at once does it"),
    "S": ("a loop over keys", "one matmul over all the keys at once does it"),
    "T": ("a loop over the new tokens", "one slice assignment and one matmul over all of them do it"),
}


def operations(ex, call):
    """How many tensor operations the learner's code dispatched in `call()`, as the sandbox counted them
    at the aten level (whatever route the code took to them)."""
    call()
    return ex.box.meta.get("ops", 0)


def no_loops(ex, call, sizes):
    """Fails if the number of operations the learner's code dispatches grows with an axis's size: a
    Python loop over it where one tensor operation does the work.

    call(**size): one call of the learner's code with those sizes (its values are not checked here).
    sizes: {axis: (small, large)}; the other axes stay at their small size while one grows.
    """
    small = {axis: pair[0] for axis, pair in sizes.items()}
    base = operations(ex, lambda: call(**small))
    for axis, (low, high) in sizes.items():
        grown = operations(ex, lambda: call(**{**small, axis: high}))
        # The same code at any size dispatches the same operations; a loop adds some per step.
        if grown - base >= high - low:
            loop, fix = LOOPS[axis]
            fail(f"Your code dispatches {grown / max(base, 1):.1f}× more operations when {axis} goes from {low} to "
                 f"{high} ({base} → {grown}): {loop}; {fix}.")


def rules_respected(ex):
    """Fails if the file reaches a forbidden helper (read from the source, or seen at run time)."""
    findings = [f"line {line}: {msg}" for line, msg in ex.static_findings]
    findings += [f"reached `{name}` while running" for name in ex.box.forbidden_hits]
    if findings:
        fail("This exercise is about building it yourself; the file " + "; ".join(findings[:3]) + ".")


def _features(call):
    """What a call's inputs were like, in the terms a learner can act on."""
    name, args, kwargs = call
    tensors = [a for a in list(args) + list(kwargs.values()) if isinstance(a, torch.Tensor)]
    floats = [t for t in tensors if t.is_floating_point()]
    found = {}
    if floats:
        found["dtype"] = _dt(floats[0].dtype)
        if floats[0].dim() >= 3:
            found["batch"] = "B > 1" if floats[0].shape[0] > 1 else "B = 1"
        if len(floats) >= 2 and floats[0].dim() >= 2 and floats[1].dim() >= 2:
            found["lengths"] = "L ≠ S" if floats[0].shape[-2] != floats[1].shape[-2] else "L = S"
    masked = any(t.dtype == torch.bool for t in tensors) or any(
        kwargs.get(k) for k in ("is_causal", "causal") if isinstance(kwargs.get(k), bool))
    found["mask"] = "with a mask" if masked else "without a mask"
    return found


def pattern(outcomes):
    """One sentence on what the failing calls have in common that the passing ones lack."""
    passed = [_features(c) for c, ok in outcomes if ok and c]
    failed = [_features(c) for c, ok in outcomes if not ok and c]
    if not passed or not failed:
        return ""
    notes = []
    for key in ("dtype", "batch", "lengths", "mask"):
        bad = {f.get(key) for f in failed}
        good = {f.get(key) for f in passed}
        if len(bad) == 1 and None not in bad and None not in good and not bad & good:
            notes.append((bad.pop(), ", ".join(sorted(x for x in good if x))))
    if not notes:
        return ""
    return "Your results go wrong only " + "; ".join(f"{b} (right {g})" for b, g in notes) + "."


# -- devices ---------------------------------------------------------------------------------------
def on_meta(module, name, args, kwargs):
    """Probe: calls `name` with every tensor argument moved to the meta device (a `device` argument
    set to meta too); returns the device, shape and dtype of each tensor of the result."""
    def meta(x):
        if isinstance(x, torch.Tensor):
            return x.to("meta")
        if isinstance(x, (tuple, list)):
            return type(x)(meta(v) for v in x)
        return x

    out = getattr(module, name)(*meta(args), **{k: "meta" if k == "device" else meta(v) for k, v in kwargs.items()})
    found = []

    def walk(x):
        if isinstance(x, torch.Tensor):
            found.append((str(x.device), list(x.shape), str(x.dtype)))
        elif isinstance(x, (tuple, list)):
            for v in x:
                walk(v)
    walk(out)
    return found


DEVICE_FIX = ("A tensor your code makes must live where its inputs live: make it from them (torch.zeros_like, "
              "x.new_zeros, device=x.device) and pass a `device` argument on. Tested on the meta device, which "
              "every machine has; on a GPU the same slip mixes cuda and cpu tensors.")


def devices_kept(ex, name, *args, probe=on_meta, **kwargs):
    """Fails unless `name`, called with its tensors on the meta device, returns every tensor on it:
    a tensor made without the inputs' device lands on the CPU, and meta and CPU tensors do not mix.
    A call meta cannot run for another reason (an op that needs the values) proves nothing here."""
    from .sandbox import SubmissionError
    try:
        found = ex.run(probe, name, args, kwargs)
    except SubmissionError as e:
        said = e.message.lower()
        if e.kind == "raised" and ("device" in said or "copy out of meta" in said or "cpu" in said and "meta" in said):
            fail(f"{name}(...) with its inputs on the meta device raised {e.message}\n  at {e.where}\n  "
                 + DEVICE_FIX, mistake="device_ignored")
        if e.kind == "raised" and "meta" in e.message:
            return
        raise
    wrong = [f"{device} {tuple(shape)}" for device, shape, _ in found if device != "meta"]
    if wrong:
        fail(f"{name}(...) with its inputs on the meta device returned a tensor on {', '.join(wrong)}.\n  "
             + DEVICE_FIX, mistake="device_ignored")
