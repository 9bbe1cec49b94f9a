"""The sandbox itself, tested in process: what a child holds, what it can reach, how replies are read,
how files are admitted, and how course modes refuse a sandbox with too few layers."""
import os
import subprocess
import sys

import pytest
import torch

from helpers import REPO, grade, submission
from grader.sandbox import wire
from grader.sandbox.host import IsolationError, Sandbox, SubmissionError, call_function
from grader.sandbox.zygote import Zygote
from grader.session import read_source


@pytest.fixture(scope="module")
def zygote():
    z = Zygote(1)
    yield z
    z.close()


def _box(zygote, source, **settings):
    return Sandbox(zygote.channel(0), source.encode(), "exercises/99_probe.py", "exercise_99_probe", **settings)


# -- probes: they run in the child ------------------------------------------------------------------
def what_the_child_holds(module):
    import os
    import sys
    fds = []
    for fd in range(256):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            pass
    return {"modules": sorted(sys.modules), "fds": fds, "env": dict(os.environ), "uid": list(os.getresuid()),
            "main": sorted(vars(sys.modules["__main__"]))}


def try_to_read(module, paths):
    import os
    found = {}
    for path in paths:
        try:
            if os.path.isdir(path):
                found[path] = "listed " + str(len(os.listdir(path)))
            else:
                with open(path, "rb") as f:
                    found[path] = "read " + str(len(f.read(10)))
        except Exception as e:
            found[path] = type(e).__name__
    return found


def test_the_child_holds_nothing_of_the_grader(zygote):
    box = _box(zygote, "def f():\n    return 1\n")
    try:
        seen = box.call(what_the_child_holds)
    finally:
        box.close()
    private = [m for m in seen["modules"] if m.split(".")[0] in ("grader", "pytest", "_pytest", "tests", "pluggy",
                                                                  "solutions", "wire", "watch", "lockdown")]
    assert private == [], private
    assert not any(k.startswith(("GRADER", "PYTEST")) for k in seen["env"]), seen["env"]
    assert seen["main"] == sorted(vars(type(sys)("__main__"))), "the harness's __main__ is in view"
    assert len(seen["fds"]) == 5, seen["fds"]      # stdin, stdout, stderr, and its two pipes: nothing else
    if os.geteuid() == 0 and "uid" in box.layers:
        assert 0 not in seen["uid"], seen["uid"]


def try_to_reach_other_children(module):
    import os
    tried = {}
    for name, attempt in (("setpriority", lambda: os.setpriority(os.PRIO_USER, os.getuid(), 19)),
                          ("sched_setaffinity", lambda: os.sched_setaffinity(os.getpid(), os.sched_getaffinity(0))),
                          ("sched_setscheduler", lambda: os.sched_setscheduler(os.getpid(), os.SCHED_OTHER,
                                                                               os.sched_param(0)))):
        try:
            attempt()
            tried[name] = "done"
        except OSError as e:
            tried[name] = type(e).__name__
    return tried


def test_a_child_cannot_change_how_other_children_are_scheduled(zygote):
    """A batch grades several students at once on one zygote: no child renices or pins another
    (asked by pid, even its own, or for a whole uid), whatever uid the children run as."""
    box = _box(zygote, "def f():\n    return 1\n")
    try:
        tried = box.call_unwatched(try_to_reach_other_children)
    finally:
        box.close()
    if "seccomp" in box.layers:
        assert set(tried.values()) == {"PermissionError"}, tried


def test_the_child_cannot_read_the_repository_nor_secrets(zygote):
    targets = [str(REPO / "grader" / "tests"), str(REPO / "grader" / "tests" / "test_05_softmax.py"),
               str(REPO / "solutions" / "05_softmax.py"), "/etc/shadow", f"/proc/{os.getpid()}/environ"]
    box = _box(zygote, "def f():\n    return 1\n")
    try:
        found = box.call(try_to_read, targets)
    finally:
        box.close()
    assert not any(v.startswith(("read", "listed")) for v in found.values()), found
    assert {"seccomp", "rlimits", "hidden"} <= set(box.layers), box.layers


def test_a_finding_is_sent_when_made_and_survives_a_crash(zygote):
    source = ("import os, torch\n"
              "def f(x):\n"
              "    try:\n"
              "        getattr(torch, 'soft' + 'max')(x, -1)\n"     # refused before it runs, and found
              "    except RuntimeError:\n"
              "        pass\n"
              "    os._exit(3)\n")
    box = _box(zygote, source, forbidden=("softmax",))
    try:
        with pytest.raises(SubmissionError) as e:
            box.call(call_function, "f", torch.randn(3))
    finally:
        box.close()
    assert e.value.kind == "crashed" and "exit status 3" in e.value.message
    assert any("softmax" in hit for hit in box.forbidden_hits), box.forbidden_hits


def test_the_exercise_budget_counts_the_load_and_ends_in_too_slow(zygote, monkeypatch):
    monkeypatch.setattr("grader.sandbox.host.EXERCISE_BUDGET", 1.0)
    box = _box(zygote, "import time\ntime.sleep(0.8)\ndef f():\n    time.sleep(0.5)\n    return 1\n")
    try:
        with pytest.raises(SubmissionError) as e:
            box.call(call_function, "f")
        assert "too slow" in e.value.message
        with pytest.raises(SubmissionError) as again:
            box.call(call_function, "f")
        assert again.value.kind == "spent" and "budget" in again.value.message
    finally:
        box.close()


def test_a_required_layer_that_is_missing_stops_the_run(zygote, monkeypatch):
    monkeypatch.setattr("grader.sandbox.host.DISABLED", ["seccomp"])
    box = _box(zygote, "def f():\n    return 1\n", require=("seccomp", "rlimits"))
    with pytest.raises(IsolationError) as e:
        box.call(call_function, "f")
    assert "seccomp" in str(e.value) and "--allow-weak-isolation" in str(e.value)


def meta_ops_and_what_they_loaded(module):
    import sys
    x = torch.ones(2, 3, 4, device="meta")
    y = ((x - x.amax(-1, keepdim=True)).exp() / 2 + torch.arange(4, device="meta")).masked_fill(x > 0, 0)
    z = torch.where(y > 0, y, -y).sqrt().log1p() @ x.transpose(-1, -2)
    return {"device": str(z.device), "shape": list(z.shape), "dynamo": "torch._dynamo" in sys.modules}


def test_meta_kernels_load_in_the_zygote_without_torch_dynamo():
    """Children of a zygote that loaded the meta device's kernels run meta ops at once, and nothing
    imported torch._dynamo for them (its import, half a second, was most of that load)."""
    z = Zygote(1, meta=True)
    try:
        box = Sandbox(z.channel(0), b"def f():\n    return 1\n", "exercises/99_probe.py", "exercise_99_probe",
                      meta=True)
        try:
            seen = box.call(meta_ops_and_what_they_loaded)
        finally:
            box.close()
    finally:
        z.close()
    assert seen == {"device": "meta", "shape": [2, 3, 3], "dynamo": False}, seen


# -- the wire ---------------------------------------------------------------------------------------
def test_wire_round_trip_of_everything_a_result_may_hold():
    value = {"t": torch.arange(6, dtype=torch.float16).reshape(2, 3), "c": torch.tensor([1 + 2j]),
             "b": torch.tensor([True, False]), "nested": [(1, 2.5, None, "x", b"raw")], "dtype": torch.bfloat16,
             7: float("-inf")}
    back = wire.decode(wire.encode(value))
    assert torch.equal(back["t"], value["t"]) and back["t"].dtype == torch.float16
    assert torch.equal(back["c"], value["c"]) and torch.equal(back["b"], value["b"])
    assert back["nested"] == [(1, 2.5, None, "x", b"raw")] and back["dtype"] is torch.bfloat16
    assert back[7] == float("-inf")


def test_wire_never_rebuilds_objects_and_rejects_garbage():
    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))
    back = wire.decode(wire.encode([Evil()]))
    assert isinstance(back[0], wire.Opaque) and back[0].type_name == "Evil"
    for garbage in (b"", b"\xff" * 16, wire.encode(1)[:5], b"\x05\x00\x00\x00[[[[[\x00\x00\x00\x00"):
        with pytest.raises(Exception):
            wire.decode(garbage)


# -- admitting a file ---------------------------------------------------------------------------
def test_read_source_admits_regular_files_only_and_reads_their_own_coding(tmp_path):
    ok = tmp_path / "ok.py"
    ok.write_bytes("# -*- coding: latin-1 -*-\nNAME = 'caf\xe9'\n".encode("latin-1"))
    text, encoding, why = read_source(ok)
    assert why is None and encoding == "iso-8859-1" and "café" in text
    link = tmp_path / "link.py"
    link.symlink_to(ok)
    assert "symbolic link" in read_source(link)[2]
    fifo = tmp_path / "fifo.py"
    os.mkfifo(fifo)
    assert "not a regular file" in read_source(fifo)[2]
    big = tmp_path / "big.py"
    big.write_bytes(b"#" * (2 << 20))
    assert "KiB" in read_source(big)[2]
    bad = tmp_path / "bad.py"
    bad.write_bytes(b"x = '\xc3\x28'\n")
    assert "cannot be decoded" in read_source(bad)[2]
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n")
    text, _, why = read_source(broken)
    assert text is not None and why.startswith("SyntaxError")
    assert read_source(tmp_path / "absent.py") == (None, None, None)


# -- course modes ------------------------------------------------------------------------------------
def test_course_modes_refuse_a_weak_sandbox_and_say_why(tmp_path, reference_grade):
    folder = submission(tmp_path, {"02_split_heads.py": REPO / "solutions" / "02_split_heads.py"})
    weak = {"GRADER_DISABLE_LAYERS": "seccomp"}
    proc = subprocess.run([sys.executable, "-m", "grader", "02", "--path", str(folder), "--require-isolation"],
                          cwd=REPO, capture_output=True, text=True, env={**os.environ, **weak}, timeout=300)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "refusing to grade" in proc.stderr and "seccomp" in proc.stderr and "Total" not in proc.stdout
    csv_path = tmp_path / "book.csv"
    (tmp_path / "class" / "ann").mkdir(parents=True)
    batch = subprocess.run([sys.executable, "-m", "grader", "batch", str(tmp_path / "class"), "02", "--csv",
                            str(csv_path)], cwd=REPO, capture_output=True, text=True, env={**os.environ, **weak},
                           timeout=300)
    assert batch.returncode == 3 and "seccomp" in batch.stderr and not csv_path.exists(), batch.stderr
    code, report, text = grade(folder, "02", env=weak, extra=["--require-isolation", "--allow-weak-isolation"])
    assert code == 0 and report["exercises"][0]["score"] == 10.0
    assert "not here: seccomp" in text and "seccomp" not in report["isolation"]["layers"]
    layers = set(reference_grade[1]["isolation"]["layers"])        # an ordinary run has them all
    assert {"seccomp", "rlimits", "session", "hidden"} <= layers, layers
    if os.geteuid() == 0:
        assert "uid" in layers, layers


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid drop happens only as root")
def test_as_root_a_failed_uid_drop_stops_any_run(tmp_path):
    folder = submission(tmp_path, {"02_split_heads.py": REPO / "solutions" / "02_split_heads.py"})
    proc = subprocess.run([sys.executable, "-m", "grader", "02", "--path", str(folder), "--allow-weak-isolation"],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "GRADER_DISABLE_LAYERS": "uid"})
    assert proc.returncode == 3 and "uid of its own" in proc.stderr, proc.stdout + proc.stderr
