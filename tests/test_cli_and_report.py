"""The command line and the JSON report keep to the contract."""
import json
import os
import subprocess
import sys

import pytest
import torch

from helpers import REPO, by_id, grade, run_grader, submission

PARTIAL_SOFTMAX = '''
import torch
def softmax(x, dim=-1):
    e = x.exp()            # no max subtracted: overflows on large logits
    return e / e.sum(dim, keepdim=True)
'''


def run(*args):
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=REPO, capture_output=True, text=True)


@pytest.fixture(scope="module")
def partial(tmp_path_factory):
    """A partial 05 beside a missing 09, graded at seed 11: (folder, (exit code, report, text))."""
    sub = submission(tmp_path_factory.mktemp("partial"), {"05_softmax.py": PARTIAL_SOFTMAX})
    return sub, grade(sub, "05", "09", seed=11)


def test_json_report_has_the_contract_fields(partial):
    _, (code, report, text) = partial
    assert code == 1
    assert set(report) >= {"score", "max_score", "seed", "exercises"}
    assert report["seed"] == 11 and report["max_score"] == 20.0
    ex05, ex09 = by_id(report)["05"], by_id(report)["09"]
    assert ex05["name"] == "softmax" and 0 < ex05["score"] < 10
    assert ex09["status"] == "missing" and ex09["score"] == 0
    for ex in report["exercises"]:
        assert set(ex) >= {"id", "name", "score", "max_score", "tests"}
        for t in ex["tests"]:
            assert set(t) >= {"name", "category", "passed", "score", "max_score", "message"}
            assert t["category"] in {"shapes", "masking", "fp16", "equivalence", "edge", "work", "rules"}
            assert t["score"] == (t["max_score"] if t["passed"] else 0.0)
            assert t["status"] == "passed" if t["passed"] else t["status"] in ("failed", "not checked")
            assert t["mistake"] is None or (t["mistake"].isidentifier() and t["mistake"].islower())
            assert isinstance(t["message"], str) and (t["passed"] or t["message"])
        assert ex["score"] == pytest.approx(sum(t["score"] for t in ex["tests"]), abs=0.01)
    assert report["score"] == pytest.approx(sum(ex["score"] for ex in report["exercises"]))
    assert "no_max_subtracted" in [t["mistake"] for t in ex05["tests"]]      # the key, not prose


DOES_NOTHING = {
    "05_softmax.py": "import torch\ndef softmax(x, dim=-1):\n    return torch.zeros_like(x)\n",
    "09_scaled_dot_product_attention.py": "def scaled_dot_product_attention(q, k, v, mask=None, scale=None):\n"
                                          "    raise RuntimeError('boom')\n",
}


def test_categories_are_honest_and_rules_points_need_behaviour(tmp_path):
    """A file that crashes earns 0, rules included, and its rules are "not checked", never failed; rules points
    count only beside points for behaviour (zeros earn the shapes points: right for any values)."""
    sub = submission(tmp_path, DOES_NOTHING)
    code, report, text = grade(sub, "05", "09", seed=4)
    ex05, ex09 = by_id(report)["05"], by_id(report)["09"]
    rules05 = next(t for t in ex05["tests"] if t["category"] == "rules")
    behaviour = any(t["passed"] and t["category"] not in ("rules", "work") for t in ex05["tests"])
    assert rules05["passed"] and (rules05["score"] > 0) == behaviour
    assert ex09["score"] == 0.0 and not any(t["passed"] for t in ex05["tests"] if t["category"] == "equivalence")
    for t in ex09["tests"]:
        assert t["status"] == "not checked", t
    shapes05 = next(t for t in ex05["tests"] if t["category"] == "shapes")
    assert shapes05["status"] in ("passed", "not checked")       # zeros have the right shape and dtype
    assert "rules ✗" not in text and "shapes ✗" not in text


def test_same_seed_same_report_and_the_seed_is_printed(partial):
    sub, first = partial
    second = grade(sub, "05", "09", seed=11)
    assert first[1] == second[1]
    assert "--seed 11" in first[2]
    code, fresh = run_grader(["05", "--path", str(sub)], env={**os.environ, "NO_COLOR": "1"})
    assert "seed" in fresh and "python -m grader 05 --seed" in fresh


def test_exit_codes(reference_grade, stub_grade):
    assert reference_grade[0] == 0           # full marks
    assert stub_grade[0] == 1                # not every exercise at full marks
    for args in (["99"], ["05", "--path", "no/such/folder"], ["--seed", "x"], ["--bogus"]):
        proc = run(*args)
        assert proc.returncode == 2, args
        assert proc.stderr.strip() and "Traceback" not in proc.stderr, args


def test_usage_errors_name_the_problem():
    assert "unknown exercise '99'" in run("99").stderr
    assert "no such folder: no/such/folder" in run("--path", "no/such/folder").stderr


def test_failure_says_expected_and_actual(partial):
    _, (code, report, text) = partial
    messages = " ".join(t["message"] for t in by_id(report)["05"]["tests"] if not t["passed"])
    assert "NaN" in messages and "row" in messages
    assert "the row max is not subtracted" in messages
    assert "Next: Continue with exercises/05_softmax.py" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_a_device_the_machine_lacks_is_said_plainly():
    for device in ("cuda", "cuda:3", "no-such-device"):
        code, text = run_grader(["01", "--path", "solutions", "--device", device])
        assert code == 2 and f"--device {device}:" in text and "not at fault" in text, (device, text)
        assert "ended the process" not in text and "/10" not in text, text


def test_device_meta_grades_values_on_the_cpu_and_devices_on_meta(tmp_path):
    """--device meta: meta tensors hold no values, so values are graded on the CPU and the device tests
    (which every grade runs) on meta: the reference keeps full marks, a device slip loses its points."""
    code, report, text = grade(REPO / "solutions", "04", seed=3, extra=["--device", "meta"])
    assert code == 0 and report["score"] == 10, text
    assert "--device meta: values are graded on the CPU" in text
    slip = (REPO / "solutions" / "04_mask.py").read_text().replace(", device=device)", ")")
    folder = submission(tmp_path, {"04_mask.py": slip})
    code, report, text = grade(folder, "04", seed=3, extra=["--device", "meta"])
    failed = [t for t in by_id(report)["04"]["tests"] if not t["passed"]]
    assert code == 1 and [t["mistake"] for t in failed] == ["device_ignored"], text


def test_workers_share_the_exercises_and_the_report_stays_the_same(tmp_path):
    """pytest collects the tests once; forked workers take the exercises left, the costliest first:
    one worker or three give the same report, in the same order, and `python -m grader` exits at
    once after writing it (nothing is lost to the skipped interpreter teardown)."""
    files = {name: REPO / "solutions" / name for name in ("02_split_heads.py", "14_flash_attention.py")}
    files["05_softmax.py"] = PARTIAL_SOFTMAX
    folder = submission(tmp_path, files)
    ids = ("02", "05", "09", "14")
    _, one, _ = grade(folder, *ids, seed=5, env={"GRADER_JOBS": "1"})
    _, three, _ = grade(folder, *ids, seed=5, env={"GRADER_JOBS": "3"})
    assert [e["id"] for e in three["exercises"]] == list(ids)
    assert three["exercises"] == one["exercises"]
    assert [by_id(three)[i]["score"] for i in ids] == [10, by_id(one)["05"]["score"], 0, 10]
    out = tmp_path / "cold.json"
    done = subprocess.run([sys.executable, "-m", "grader", *ids, "--path", str(folder), "--seed", "5",
                           "--json", str(out)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1", "GRADER_JOBS": "2"})
    assert done.returncode == 1 and "Total" in done.stdout, done.stdout + done.stderr
    assert json.loads(out.read_text())["exercises"] == one["exercises"]
