"""Attacks on the grader: each file in tests/cheats/ scores 0 and changes nothing else.

A cheat is `tests/cheats/NN_name__attack.py`, first line `# attack: what it tries`. The cheats are
graded in batches (one file per exercise in a submission, so a batch holds at most one cheat per
exercise) by the real grader, run from a scratch copy of `grader/` so that an attack that did get
to write there could not damage the repository. Beside every batch, two exercises are graded from
the reference ("witnesses"); they must grade exactly as they do in a submission without cheats.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict

import pytest

from helpers import REPO

CHEATS = sorted((REPO / "tests" / "cheats").glob("[0-9][0-9]_*__*.py"))
WITNESSES = ("09", "12")
SEED = 7
HANG_LIMIT = "2"        # GRADER_TIMEOUT for these runs: a hang costs 2 s
RUN_LIMIT = 120         # seconds a whole batch may take (it takes far less; the machine may be busy)
REPORT_LIMIT = 40_000   # characters of the printed report, floods included

# What the report must name for the cheats that reach a forbidden helper.
NAMED = {"alias_import": "softmax", "getattr_built_name": "softmax", "aten_op": "softmax",
         "tensor_method": "softmax", "disable_torch_function": "softmax", "torchscript": "softmax",
         "fused_attention_built_name": "scaled_dot_product", "patch_comparisons": "torch.allclose",
         "lying_subclass": "subclass", "frame_walk": "_getframe", "gc_scan": "gc.get_objects",
         "import_grader": "import", "kill_parent": "os.kill", "orphan_processes": "process",
         "conftest_and_plugin": "conftest.py", "write_grader_files": "writing the file"}


def _exercise(path):
    return path.name.split("__")[0]          # "05_softmax"


def _batches():
    by_exercise = defaultdict(list)
    for cheat in CHEATS:
        by_exercise[_exercise(cheat)].append(cheat)
    assert not {name[:2] for name in by_exercise} & set(WITNESSES), "a cheat targets a witness exercise"
    return [[cheats[i] for cheats in by_exercise.values() if i < len(cheats)]
            for i in range(max(map(len, by_exercise.values())))]


def _fingerprint(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def _start(work, name, cheats):
    """Starts one grader run in its own scratch repository; returns what is needed to finish it."""
    repo = work / name / "repo"
    shutil.copytree(REPO / "grader", repo / "grader", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "solutions", repo / "solutions", ignore=shutil.ignore_patterns("__pycache__"))
    sub = work / name / "submission"
    sub.mkdir()
    for cheat in cheats:
        shutil.copy(cheat, sub / f"{_exercise(cheat)}.py")
    for ex_id in WITNESSES:
        (reference,) = (REPO / "solutions").glob(f"{ex_id}_*.py")
        shutil.copy(reference, sub / reference.name)
    ids = sorted({c.name[:2] for c in cheats} | set(WITNESSES))
    report = work / name / "report.json"
    before = _fingerprint(repo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "grader", *ids, "--path", str(sub), "--seed", str(SEED), "--json", str(report)],
        cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
        env={**os.environ, "NO_COLOR": "1", "GRADER_TIMEOUT": HANG_LIMIT, "CHEAT_REPO": str(repo)})
    return {"proc": proc, "start": time.monotonic(), "report": report, "repo": repo, "before": before,
            "sub": sub, "cheats": cheats}


def _finish(run):
    try:
        text, _ = run["proc"].communicate(timeout=RUN_LIMIT)
    except subprocess.TimeoutExpired:
        run["proc"].kill()
        text, _ = run["proc"].communicate()
        text = f"[the grader did not finish within {RUN_LIMIT} s]\n" + text
    run["seconds"] = time.monotonic() - run["start"]
    run["code"] = run["proc"].returncode
    run["text"] = text
    run["json"] = json.loads(run["report"].read_text()) if run["report"].exists() else None
    run["after"] = _fingerprint(run["repo"])
    run["conftests"] = sorted(str(p) for p in run["repo"].rglob("conftest.py"))
    return run


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grades every batch of cheats, and the witnesses alone; three runs at a time."""
    work = tmp_path_factory.mktemp("cheats")
    jobs = [("baseline", [])] + [(f"batch{i}", batch) for i, batch in enumerate(_batches())]
    running, done = [], {}
    for name, cheats in jobs:
        if len(running) >= 3:
            finished = _finish(running.pop(0))
            done[finished["name"]] = finished
        running.append(dict(_start(work, name, cheats), name=name))
    for run in running:
        done[run["name"]] = _finish(run)
    return done


def _run_of(graded, cheat):
    return next(r for r in graded.values() if cheat in r["cheats"])


def _exercises(run):
    assert run["json"] is not None, f"no report came back (exit {run['code']}):\n{run['text'][-3000:]}"
    return {ex["id"]: ex for ex in run["json"]["exercises"]}


def test_every_cheat_says_what_it_attacks():
    assert len(CHEATS) >= 15
    for cheat in CHEATS:
        assert cheat.read_text().startswith("# attack: "), cheat.name


@pytest.mark.parametrize("cheat", CHEATS, ids=[c.stem for c in CHEATS])
def test_cheat_scores_zero_and_costs_nothing_else(graded, cheat):
    run = _run_of(graded, cheat)
    exercises = _exercises(run)
    ex = exercises[cheat.name[:2]]
    detail = json.dumps(ex, indent=1)[:3000]
    assert ex["score"] == 0, f"{cheat.stem} earned {ex['score']}:\n{detail}"
    assert not any(t["score"] for t in ex["tests"]), detail
    attack = cheat.stem.split("__")[1]
    if attack in NAMED:
        assert ex["status"] == "forbidden" and NAMED[attack] in ex["error"], detail
    # The witnesses beside it grade exactly as in a submission without any cheat.
    baseline = _exercises(graded["baseline"])
    for ex_id in WITNESSES:
        assert baseline[ex_id]["score"] == 10.0
        assert exercises[ex_id] == baseline[ex_id], f"witness {ex_id} changed beside {cheat.stem}"


@pytest.mark.parametrize("name", ["baseline"] + [f"batch{i}" for i in range(len(_batches()))])
def test_each_run_ends_in_time_with_a_readable_report_and_the_grader_untouched(graded, name):
    run = graded[name]
    assert run["code"] == (0 if name == "baseline" else 1), run["text"][-3000:]
    assert run["seconds"] < RUN_LIMIT
    assert len(run["text"]) < REPORT_LIMIT, f"the report is {len(run['text'])} characters long"
    assert "Total" in run["text"] and "Traceback" not in run["text"], run["text"][-3000:]
    assert run["after"] == run["before"], "a cheat changed the grader's or the reference's files"
    assert run["conftests"] == [], run["conftests"]


def test_a_flood_of_output_is_cut_in_the_report(graded):
    (cheat,) = [c for c in CHEATS if c.stem.endswith("__output_flood")]
    run = _run_of(graded, cheat)
    ex = _exercises(run)[cheat.name[:2]]
    assert ex["score"] == 0
    flood = [line for line in run["text"].splitlines() if "complete " in line and "10.0/10  complete" in line]
    assert 0 < len(flood) <= 20, "the flood should show, briefly"
    assert "[... cut]" in run["text"]
