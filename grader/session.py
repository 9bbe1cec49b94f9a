"""Runs the hidden tests with pytest, in this process, against submissions in sandboxes."""
import os
import pickle
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from .checks import PROPERTY, Fail, pattern
from .exercises import GRADER_DIR, POINTS_PER_EXERCISE
from .guards import scan_source
from .sandbox import Sandbox, SubmissionError, call_function


class Submission:
    """One exercise file as the tests see it: `ex.some_function(...)` runs it in the sandbox."""

    def __init__(self, exercise, path, device, test_module):
        self.exercise = exercise
        self.path = path
        self.mistakes = list(getattr(test_module, "MISTAKES", ()))
        forbidden = tuple(getattr(test_module, "FORBIDDEN", ()))
        self.source = path.read_text(errors="replace") if path.is_file() else None
        imports = tuple(getattr(test_module, "FORBIDDEN_IMPORTS", ()))
        self.static_findings = scan_source(self.source, forbidden, imports) if self.source is not None else []
        self.box = Sandbox(str(path), f"exercise_{exercise.id}_{exercise.name}", forbidden, device)
        self.last_call = None
        self.outcomes = []   # (call, matched) for every comparison, to find what failures share

    def run(self, probe, *args, **kwargs):
        """Runs `probe(module, *args, **kwargs)` in the sandbox (probe: a module-level function)."""
        self.last_call = (probe.__name__, args, kwargs)
        if self.source is None:
            raise SubmissionError("missing", f"{self.exercise.filename} is missing: not attempted")
        return self.box.call(probe, *args, **kwargs)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        def call(*args, **kwargs):
            if self.source is None:
                raise SubmissionError("missing", f"{self.exercise.filename} is missing: not attempted")
            self.last_call = (name, args, kwargs)
            return self.box.call(call_function, name, *args, **kwargs)
        return call


@dataclass
class TestResult:
    name: str
    doc: str
    category: str
    max_score: float
    passed: bool = False
    message: str = ""
    kind: str = ""          # why it failed: fail | not_implemented | raised | timeout | crashed | ...
    on: str = ""            # for kind "fail": what the failed check looked at (type, shape, dtype, values, "")
    checks: str = ""        # the test's own property, when its category does not say it (memory, work)
    mistake: str = None     # the key of the catalogued mistake the failure was matched to

    @property
    def status(self):
        """passed, failed, or "not checked": the code crashed, or a check other than this test's own
        property failed first (wrong values in a test of shapes, rules, memory or work)."""
        if self.passed:
            return "passed"
        if self.kind != "fail":
            return "not checked"
        own = ("type", "shape", "dtype", "values") if self.checks == "values" else (
            () if self.checks else PROPERTY.get(self.category, ("type", "shape", "dtype", "values")))
        return "failed" if not self.on or self.on in own else "not checked"


@dataclass
class ExerciseResult:
    exercise: object
    path: Path
    tests: list = field(default_factory=list)
    import_error: str = ""
    forbidden: list = field(default_factory=list)
    printed: str = ""
    pattern: str = ""

    @property
    def max_score(self):
        return POINTS_PER_EXERCISE

    def earned(self, t):
        """A test's points: rules points count only beside points earned for behaviour."""
        if not t.passed or self.forbidden:
            return 0.0
        if t.category == "rules" and not any(u.passed and u.category != "rules" for u in self.tests):
            return 0.0
        return t.max_score

    @property
    def score(self):
        return round(sum(self.earned(t) for t in self.tests), 2)

    @property
    def status(self):
        if not self.path.is_file():
            return "missing"
        if self.forbidden:
            return "forbidden"
        if self.import_error:
            return "broken"
        if self.tests and all(t.passed for t in self.tests):
            return "complete"
        if not any(t.passed for t in self.tests) and all(t.kind in ("not_implemented", "spent") for t in self.tests
                                                         if not t.passed) and any(
                t.kind == "not_implemented" for t in self.tests):
            return "not started"
        return "in progress"


class GraderPlugin:
    def __init__(self, exercises, directory, seed, device="cpu"):
        self.seed = seed
        self.device = device
        self.directory = Path(directory)
        self.by_module = {ex.test_module.stem: ex for ex in exercises}
        self.results = {ex.id: ExerciseResult(ex, self.directory / ex.filename) for ex in exercises}
        self.submissions = {}

    def submission(self, module):
        exercise = self.by_module[Path(module.__file__).stem]
        if exercise.id not in self.submissions:
            self.submissions[exercise.id] = Submission(exercise, self.directory / exercise.filename,
                                                       self.device, module)
        return self.submissions[exercise.id]

    @pytest.fixture
    def ex(self, request):
        return self.submission(request.module)

    @pytest.fixture
    def rng(self, request):
        # Fresh inputs each run, yet a seed and a test name reproduce them exactly.
        g = torch.Generator()
        g.manual_seed((self.seed * 1_000_003 + zlib.crc32(request.node.name.encode())) % (2 ** 63))
        return g

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        if call.when != "call" and not (call.when == "setup" and call.excinfo):
            return report
        exercise = self.by_module[Path(item.module.__file__).stem]
        category, points = getattr(item.function, "grade", ("edge", 1.0))
        doc = (item.function.__doc__ or item.name.removeprefix("test_").replace("_", " ")).strip().splitlines()[0]
        result = TestResult(item.name, doc, category, points, passed=call.excinfo is None,
                            checks=getattr(item.function, "checks", None) or "")
        if call.excinfo is not None:
            exc = call.excinfo.value
            result.kind, result.message = _explain(exc, exercise)
            result.on = getattr(exc, "on", None) or ""
            result.mistake = getattr(exc, "mistake", None)
        self.results[exercise.id].tests.append(result)
        return report

    def finish(self):
        for ex_id, result in self.results.items():
            total = sum(t.max_score for t in result.tests)
            for t in result.tests:     # each exercise is worth the same, whatever its tests add up to
                t.max_score = round(t.max_score * POINTS_PER_EXERCISE / total, 3)
            sub = self.submissions.get(ex_id)
            if sub is None:
                continue
            result.import_error = sub.box.import_error or ""
            hits = [f"{msg} (line {line})" for line, msg in sub.static_findings]
            hits += [f"reaches the forbidden `{name}` at run time" for name in sub.box.forbidden_hits]
            result.forbidden = hits
            result.printed = sub.box.printed() if sub.source is not None else ""
            result.pattern = pattern(sub.outcomes)
            sub.box.close()


def _explain(exc, exercise):
    if isinstance(exc, Fail):
        return "fail", str(exc)
    if isinstance(exc, SubmissionError):
        if exc.kind == "not_implemented":
            return exc.kind, "not implemented yet (the function still raises NotImplementedError)"
        where = f"\n  at {exc.where}" if exc.where else ""
        if exc.kind == "raised":
            return exc.kind, f"your code raised {exc.message}{where}"
        return exc.kind, exc.message + where
    return "grader", f"internal grader error ({type(exc).__name__}: {exc}); please report it"


def run(exercises, directory, seed, device="cpu"):
    """Grades `exercises` found in `directory`; returns their ExerciseResults in order.

    With several cores, the exercises are shared among forked workers (torch is imported once).
    """
    torch.set_num_threads(1)   # tiny tensors; and a process that never spun threads forks safely
    jobs = min(len(exercises), int(os.environ.get("GRADER_JOBS", min(2, os.cpu_count() or 1))))
    if jobs <= 1:
        return _run_here(exercises, directory, seed, device)
    workers = []
    for i in range(jobs):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            code = 0
            try:
                payload = pickle.dumps(("ok", _run_here(exercises[i::jobs], directory, seed, device)))
            except BaseException as e:
                payload, code = pickle.dumps(("error", f"{type(e).__name__}: {e}")), 1
            try:
                with os.fdopen(write_end, "wb") as f:
                    f.write(payload)
            finally:
                os._exit(code)
        os.close(write_end)
        workers.append((pid, read_end))
    results = {}
    for pid, read_end in workers:
        with os.fdopen(read_end, "rb") as f:
            data = f.read()
        os.waitpid(pid, 0)
        if not data:
            raise RuntimeError("a grading worker died")
        status, value = pickle.loads(data)   # written by the grader's own worker, never by a submission
        if status != "ok":
            raise RuntimeError(value)
        results.update((r.exercise.id, r) for r in value)
    return [results[ex.id] for ex in exercises]


def _run_here(exercises, directory, seed, device):
    plugin = GraderPlugin(exercises, directory, seed, device)
    args = [str(ex.test_module) for ex in exercises] + [
        "-c", str(GRADER_DIR / "pytest.ini"), "--rootdir", str(GRADER_DIR),
        "-p", "no:cacheprovider", "-p", "no:terminal", "-p", "no:stepwise", "--noconftest",
        # Plugins the grader has no use for; unraisableexception alone costs two full gc passes.
        "-p", "no:unraisableexception", "-p", "no:threadexception", "-p", "no:doctest",
        "-p", "no:junitxml", "-p", "no:pastebin", "-p", "no:logging", "-p", "no:warnings",
        "-p", "pytest_timeout", "--timeout", os.environ.get("GRADER_TEST_TIMEOUT", "120"),
        "--timeout-method", "signal"]
    os.environ.setdefault("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    try:
        code = pytest.main(args, plugins=[plugin])
    finally:
        plugin.finish()
    empty = [ex.id for ex in exercises if not plugin.results[ex.id].tests]
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) or empty:
        raise RuntimeError(f"the grader's own tests did not run (pytest exit {int(code)}; "
                           f"no tests for {', '.join(empty) or '-'})")
    return [plugin.results[ex.id] for ex in exercises]
