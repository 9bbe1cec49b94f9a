"""Runs the hidden tests with pytest against submissions in sandboxes: collected once, in this process,
and run here or in workers forked from it."""
import dataclasses
import io
import json
import os
import stat
import struct
import tokenize
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from . import paths
from .checks import PROPERTY, Fail, pattern
from .exercises import GRADER_DIR, POINTS_PER_EXERCISE, all_exercises
from .forbidden import PYTORCH_ONLY
from .guards import scan_source
from .points import on_grid
from .safe_text import MAX_FINDINGS, one_line
from .sandbox import IsolationError, Sandbox, SubmissionError, Zygote, call_function, clean
from .sandbox.host import DISABLED
from .status import Status, TestStatus

MAX_SOURCE = int(os.environ.get("GRADER_MAX_SOURCE_KB", "1024")) << 10   # bytes: a file above it is not read


def read_source(path):
    """(text, encoding, None) for a file the grader will grade, or (None, None, why it won't).

    Follows no symbolic link, neither the file nor any folder above it (grader/paths.py), never
    reads more than MAX_SOURCE bytes, and decodes with the file's own coding cookie (PEP 263), so
    what is scanned is exactly what runs."""
    try:
        dirfd, name = paths.open_parent(path)
    except (FileNotFoundError, NotADirectoryError):
        return None, None, None
    except paths.Refused as e:
        return None, None, str(e)
    except OSError as e:
        return None, None, f"{path.name} cannot be read ({e.strerror})"
    try:
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None, None, None
        except OSError as e:
            return None, None, f"{path.name} cannot be read ({e.strerror})"
        if stat.S_ISLNK(st.st_mode):
            return None, None, f"{path.name} is a symbolic link; submit the file itself"
        if not stat.S_ISREG(st.st_mode):
            return None, None, f"{path.name} is not a regular file"
        if st.st_size > MAX_SOURCE:
            return None, None, f"{path.name} is {st.st_size:,} bytes, over the {MAX_SOURCE >> 10} KiB an exercise may take"
        try:
            with os.fdopen(paths.open_file(dirfd, name, st), "rb") as f:
                data = f.read(MAX_SOURCE + 1)
        except OSError as e:
            return None, None, f"{path.name} cannot be read ({e.strerror})"
    finally:
        os.close(dirfd)
    if len(data) > MAX_SOURCE:
        return None, None, f"{path.name} is over the {MAX_SOURCE >> 10} KiB an exercise may take"
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError) as e:
        return None, None, f"{path.name} cannot be decoded: {clean(e, 200)}"
    try:
        compile(text, str(path.name), "exec", flags=0x400, dont_inherit=True)   # PyCF_ONLY_AST
    except SyntaxError as e:
        return text, encoding, f"SyntaxError: {clean(e.msg, 200)} (line {e.lineno}: {clean((e.text or '').strip(), 200)})"
    except (ValueError, RecursionError, MemoryError) as e:
        return None, None, f"{path.name} cannot be parsed: {clean(e, 200)}"
    return text, encoding, None


class Submission:
    """One exercise file as the tests see it: `ex.some_function(...)` runs it in the sandbox."""

    def __init__(self, exercise, path, device, test_module, channel, require=(), refused=None):
        self.exercise = exercise
        self.path = path
        self.mistakes = list(getattr(test_module, "MISTAKES", ()))
        forbidden = tuple(getattr(test_module, "FORBIDDEN", ()))
        imports = tuple(getattr(test_module, "FORBIDDEN_IMPORTS", PYTORCH_ONLY))
        # refused: why the whole submission is not graded (a link in its path or inside it)
        self.source, encoding, self.unreadable = (None, None, refused) if refused else read_source(path)
        self.static_findings = []
        if self.source is not None and not self.unreadable and "static" not in DISABLED:
            self.static_findings = scan_source(self.source, forbidden, imports)
        self.box = Sandbox(channel, (self.source or "").encode(encoding or "utf-8"),
                           f"{path.parent.name}/{path.name}", f"exercise_{exercise.id}_{exercise.name}",
                           encoding=encoding or "utf-8", forbidden=forbidden, device=device,
                           numpy_only="torch" in imports, no_numpy="numpy" in imports, require=require,
                           meta=bool(getattr(test_module, "CHECKS_DEVICES", False)))
        if refused:
            self.box.import_error = self.box.spent = f"not graded: {refused}"
        elif self.unreadable:
            self.box.import_error = self.box.spent = f"your file could not be loaded: {self.unreadable}"
        self.last_call = None
        self.outcomes = []   # (call, matched) for every comparison, to find what failures share
        self.expected_errors = set()   # the exceptions the running test asks for (checks.raises)

    def _check_present(self):
        if self.source is None and not self.unreadable:
            raise SubmissionError("missing", f"{self.exercise.filename} is missing: not attempted")

    def run(self, probe, *args, **kwargs):
        """Runs `probe(module, *args, **kwargs)` in the sandbox (probe: a module-level function that
        uses only its arguments and torch, numpy, math and time: it travels as source)."""
        self.last_call = (probe.__name__, args, kwargs)
        self._check_present()
        return self.box.call(probe, *args, **kwargs)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        def call(*args, **kwargs):
            self._check_present()
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
    seconds: float = 0.0    # how long the test took (JUnit and Gradescope report it)
    on: str = ""            # for kind "fail": what the failed check looked at (type, shape, dtype, values, "")
    checks: str = ""        # the test's own property, when its category does not say it (memory, work)
    mistake: str = None     # the key of the catalogued mistake the failure was matched to

    @property
    def status(self):
        """passed, failed, or "not checked": the code crashed, or a check other than this test's own
        property failed first (wrong values in a test of shapes, rules, memory or work)."""
        if self.passed:
            return TestStatus.PASSED
        if self.kind != "fail":
            return TestStatus.NOT_CHECKED
        own = ("type", "shape", "dtype", "values") if self.checks == "values" else (
            () if self.checks else PROPERTY.get(self.category, ("type", "shape", "dtype", "values")))
        return TestStatus.FAILED if not self.on or self.on in own else TestStatus.NOT_CHECKED


def _idle_holds(t):
    """Whether a function that does nothing (returns None) would pass test t."""
    return t.category in ("rules", "work") or t.checks in ("inputs", "device", "work", "memory")


@dataclass
class ExerciseResult:
    exercise: object
    path: Path
    tests: list = field(default_factory=list)
    import_error: str = ""
    forbidden: list = field(default_factory=list)
    printed: str = ""
    pattern: str = ""
    layers: list = field(default_factory=list)   # the sandbox's isolation layers, as it reported them
    narration: dict = None                        # the shape comments checked (with --narrate)

    @property
    def max_score(self):
        return POINTS_PER_EXERCISE

    def earned(self, t):
        """A test's points. What code that does nothing also satisfies (no forbidden helper, no loop,
        inputs left alone, no tensor on another device) counts only beside points earned for behaviour."""
        if not t.passed or self.forbidden:
            return 0.0
        if _idle_holds(t) and not any(u.passed and not _idle_holds(u) for u in self.tests):
            return 0.0
        return t.max_score

    @property
    def score(self):
        return round(sum(self.earned(t) for t in self.tests), 2)

    @property
    def status(self):
        if not self.import_error and not _present(self.path):
            return Status.MISSING
        if self.forbidden:
            return Status.FORBIDDEN
        if self.import_error:
            return Status.BROKEN
        if self.tests and all(t.passed for t in self.tests):
            return Status.COMPLETE
        if not any(t.passed for t in self.tests) and all(t.kind in ("not_implemented", "spent") for t in self.tests
                                                         if not t.passed) and any(
                t.kind == "not_implemented" for t in self.tests):
            return Status.NOT_STARTED
        return Status.IN_PROGRESS


def _present(path):
    """Whether something is at `path` (a link counts, and is not followed, nor any above it)."""
    try:
        return paths.lstat(path) is not None
    except paths.Refused:
        return True


class GraderPlugin:
    def __init__(self, exercises, directory, seed, device="cpu", zygote=None, require=(), narrate=False, root=None,
                 jobs=1):
        self.seed = seed
        self.narrate = narrate
        self.device = device
        self.zygote, self.require, self.jobs = zygote, require, jobs
        self.channel = None             # this process's channel to the zygote
        self.directory = Path(directory)
        self.by_module = {ex.test_module.stem: ex for ex in exercises}
        self.results = {ex.id: ExerciseResult(ex, self.directory / ex.filename) for ex in exercises}
        self.submissions = {}
        self.finished = set()           # exercises whose results are final (graded in a worker)
        self.layers = []
        self.isolation_error = None
        self.worker_errors = []
        # A link in the submission's path or inside it costs every exercise; one at an exercise's
        # own name costs that exercise alone (read_source says why). The submission is `root` (a
        # student's repository) when the folder graded is its exercises/, else that folder.
        root = Path(root or directory)
        self.refused = paths.refusal(root, {os.path.relpath(self.directory / ex.filename, root)
                                            for ex in all_exercises()})

    def submission(self, module):
        exercise = self.by_module[Path(module.__file__).stem]
        if exercise.id not in self.submissions:
            self.submissions[exercise.id] = Submission(exercise, self.directory / exercise.filename,
                                                       self.device, module, self.channel, self.require,
                                                       self.refused)
        return self.submissions[exercise.id]

    def pytest_configure(self, config):
        # The grader writes its own message for a failed test. pytest's traceback, which parses the
        # source of every frame (60 ms a failure: seconds for a stub), would be made for nobody.
        config.option.tbstyle = "no"

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session):
        """Runs the tests collected once, here: over one channel, or shared among forked workers
        that each take the next exercise left (the costliest first), so the cores finish together."""
        if session.testsfailed and not session.config.option.continue_on_collection_errors:
            return None           # pytest's own loop reports the collection error
        try:
            self.layers = check_isolation(self.zygote.channel(0), self.require)
        except IsolationError as e:
            self.isolation_error = str(e)
            return True
        groups = {}
        for item in session.items:
            groups.setdefault(self.by_module[Path(item.module.__file__).stem], []).append(item)
        if self.jobs <= 1:
            self.channel = self.zygote.channel(0)
            for items in groups.values():
                _run_items(items)
            return True
        # the costliest first (the test module's COST, read off the module pytest imported)
        self._run_in_workers(sorted(groups.items(), key=lambda group: -getattr(group[1][0].module, "COST", 1.0)))
        return True

    def _run_in_workers(self, groups):
        queue_r, queue_w = os.pipe()
        # Two bytes per exercise, all written before any worker reads: a read of two bytes takes one whole.
        os.write(queue_w, b"".join(struct.pack("<H", i) for i in range(len(groups))))
        os.close(queue_w)
        workers = []
        for i in range(self.jobs):
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read_end)
                self._worker(i, groups, queue_r, write_end)
            os.close(write_end)
            workers.append((pid, read_end))
        os.close(queue_r)
        by_id = {ex.id: ex for ex, _ in groups}
        for pid, read_end in workers:
            with os.fdopen(read_end) as f:
                text = f.read()
            os.waitpid(pid, 0)
            payload = json.loads(text) if text else {"error": "a grading worker died"}
            if "isolation" in payload:
                self.isolation_error = payload["isolation"]
            elif "error" in payload:
                self.worker_errors.append(payload["error"])
            for plain in payload.get("ok", ()):
                result = _from_plain(plain, by_id[plain["exercise"]])
                self.results[result.exercise.id] = result
                self.finished.add(result.exercise.id)

    def _worker(self, i, groups, queue, out):
        """In a forked worker: grades exercises off the queue over channel i, hands back their
        results as JSON (never a pickle), and never returns."""
        code = 0
        try:
            self.zygote.keep_only(i)
            self.channel = self.zygote.channel(i)
            done = []
            while True:
                taken = os.read(queue, 2)
                if not taken:
                    break
                exercise, items = groups[struct.unpack("<H", taken)[0]]
                _run_items(items)
                done.append(exercise.id)
            self.finish()
            payload = {"ok": [_plain(self.results[ex_id]) for ex_id in done]}
        except BaseException as e:
            payload, code = ({"isolation": self.isolation_error} if self.isolation_error else
                             {"error": f"{type(e).__name__}: {e}"}), 1
        try:
            with os.fdopen(out, "w") as f:
                json.dump(payload, f)
        finally:
            os._exit(code)

    @pytest.fixture
    def ex(self, request):
        sub = self.submission(request.module)
        sub.expected_errors = set()
        return sub

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
                            seconds=round(getattr(report, "duration", 0.0), 4),
                            checks=getattr(item.function, "checks", None) or "")
        if call.excinfo is not None:
            exc = call.excinfo.value
            if isinstance(exc, IsolationError):
                self.isolation_error = str(exc)
                pytest.exit(self.isolation_error, returncode=3)
            result.kind, result.message = _explain(exc)
            result.on = getattr(exc, "on", None) or ""
            result.mistake = getattr(exc, "mistake", None)
            sub = self.submissions.get(exercise.id)
            asked = sub.expected_errors & set(getattr(exc, "exc_types", ())) if sub is not None else set()
            if isinstance(exc, SubmissionError) and exc.kind == "raised" and asked:
                # The test asks for this exception elsewhere: raised here, on a call that should succeed, it
                # is the property failing (e.g. a refused update that left the cache changed), not a crash.
                result.kind = "fail"
                result.message = clean(f"your code raised {exc.message} on a call that should succeed (this test "
                                       f"expects {sorted(asked)[0]} only where it asks for it)"
                                       + (f"\n  at {exc.where}" if exc.where else ""), 4000)
        self.results[exercise.id].tests.append(result)
        return report

    def finish(self):
        for ex_id, result in self.results.items():
            if ex_id in self.finished:
                continue
            # Each exercise is worth the same, whatever its tests add up to, in quarter points
            # that add up exactly (grader/points.py).
            for t, w in zip(result.tests, on_grid([t.max_score for t in result.tests], POINTS_PER_EXERCISE)):
                t.max_score = w
            sub = self.submissions.get(ex_id)
            if sub is None:
                continue
            result.import_error = sub.box.import_error or ""
            hits = [one_line(f"{msg} (line {line})") for line, msg in sub.static_findings]
            hits += [f"reaches the forbidden `{name}` at run time" for name in sub.box.forbidden_hits]
            unlisted = len(hits[MAX_FINDINGS:]) + sub.box.unlisted_hits     # a flood is counted, not listed
            result.forbidden = hits[:MAX_FINDINGS]
            if unlisted:
                result.forbidden.append(f"and {unlisted:,} more findings not listed")
            result.printed = sub.box.printed() if sub.source is not None else ""
            result.pattern = pattern(sub.outcomes)
            result.layers = list(sub.box.layers)
            if self.narrate and sub.source is not None and not sub.box.spent:
                result.narration = _narration(sub)
            sub.box.close()


def _narration(sub):
    """The learner's shape comments against the real shapes of one representative call, traced in
    the sandbox; None when that call cannot be made. It earns no points."""
    from .narration import call_sizes, check_narration, narrate
    try:
        record = sub.box.call_unwatched(narrate, sub.exercise.id, sub.box.filename)
        return check_narration(sub.source, record, call_sizes(sub.exercise.id))
    except Exception:      # a failed call, or a record that is not plain bounded data (BadRecord)
        return None


def _explain(exc):
    """(kind, message) for a failed test; every message is made safe to print (it may quote the
    submission's values or words)."""
    kind, message = _explain_raw(exc)
    return kind, clean(message, 4000)


def _explain_raw(exc):
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


def run(exercises, directory, seed, device="cpu", zygote=None, require=(), narrate=False, root=None):
    """Grades `exercises` found in `directory` (in the submission `root`, by default `directory`
    itself: no link is followed, in its path or inside it); returns their ExerciseResults in order.

    Submissions run in children of one sandboxed zygote (sandbox/). pytest collects the hidden
    tests once, while the zygote starts; with several cores, forked workers share the exercises,
    each over its own channel to the zygote.
    """
    torch.set_num_threads(1)   # tiny tensors; and a process that never spun threads forks safely
    own = zygote is None
    if own:
        zygote = Zygote(min(len(exercises), int(os.environ.get("GRADER_JOBS", min(2, os.cpu_count() or 1)))), device)
    jobs = min(len(exercises), len(zygote.sockets))      # one channel to the zygote per worker
    try:
        results, layers = _run_tests(exercises, directory, seed, device, zygote, require, jobs, narrate, root)
    finally:
        if own:
            zygote.close()
    for r in results:
        r.layers = r.layers or layers
    return results


def check_isolation(channel, require):
    """Starts one empty sandbox to learn which layers hold here; IsolationError if too few."""
    box = Sandbox(channel, b"", "<isolation check>", "isolation_check", require=require)
    try:
        box._spawn()
    finally:
        box.close()
    if box.import_error and not box.layers:
        raise RuntimeError(f"the sandbox could not start: {box.import_error}")
    return list(box.layers)


def _run_items(items):
    for i, item in enumerate(items):
        item.config.hook.pytest_runtest_protocol(item=item, nextitem=items[i + 1] if i + 1 < len(items) else None)


def _plain(result):
    d = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    d["exercise"] = result.exercise.id
    d["path"] = str(result.path)
    d["tests"] = [dataclasses.asdict(t) for t in result.tests]
    return d


def _from_plain(d, exercise):
    d = dict(d, exercise=exercise, path=Path(d["path"]))
    d["tests"] = [TestResult(**t) for t in d["tests"]]
    return ExerciseResult(**d)


def _run_tests(exercises, directory, seed, device, zygote, require, jobs, narrate=False, root=None):
    plugin = GraderPlugin(exercises, directory, seed, device, zygote, require, narrate, root, jobs)
    args = [str(ex.test_module) for ex in exercises] + [
        "-c", str(GRADER_DIR / "pytest.ini"), "--rootdir", str(GRADER_DIR),
        "-p", "no:cacheprovider", "-p", "no:terminal", "-p", "no:stepwise", "--noconftest",
        # The tests fail through checks.fail with their own message: rewriting their asserts (a compile of
        # every test module, each run) would add nothing.
        "--assert=plain",
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
    if plugin.isolation_error:
        raise IsolationError(plugin.isolation_error)
    if plugin.worker_errors:
        raise RuntimeError("; ".join(plugin.worker_errors))
    empty = [ex.id for ex in exercises if not plugin.results[ex.id].tests]
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) or empty:
        raise RuntimeError(f"the grader's own tests did not run (pytest exit {int(code)}; "
                           f"no tests for {', '.join(empty) or '-'})")
    return [plugin.results[ex.id] for ex in exercises], plugin.layers
