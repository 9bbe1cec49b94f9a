"""The warm grader (grader/warm.py) that watch, drill and the interview grade with: it grades a
changed file with the new code, exactly as a cold `python -m grader` does, and is restarted when
it dies or the grader's files change."""
import json
import shutil

import pytest

import grader.warm as warm_module
from grader.warm import Warm
from helpers import REPO, grade
from test_cheats import _stable


@pytest.fixture(scope="module")
def server():
    w = Warm()
    yield w
    w.stop()


def _grade_warm(server, folder, out):
    code = server.grade(["05", "--path", str(folder), "--seed", "3", "--json", str(out)], {"NO_COLOR": "1"})
    return code, json.loads(out.read_text())


def test_a_warm_grade_of_a_changed_file_uses_the_new_code_and_equals_a_cold_one(server, tmp_path):
    folder = tmp_path / "ex"
    folder.mkdir()
    shutil.copy(REPO / "exercises" / "05_softmax.py", folder)
    code, stub = _grade_warm(server, folder, tmp_path / "a.json")
    assert code == 1 and stub["score"] == 0
    first = server.pid
    shutil.copy(REPO / "solutions" / "05_softmax.py", folder)          # the learner saves a solution
    code, solved = _grade_warm(server, folder, tmp_path / "b.json")
    assert code == 0 and solved["score"] == 10 and server.pid == first   # the same warm server
    _, cold, _ = grade(folder, "05", seed=3)
    assert _stable(solved) == _stable(cold)


def test_a_dead_or_stale_server_is_replaced_without_the_caller_noticing(server, tmp_path, monkeypatch):
    folder = tmp_path / "ex"
    folder.mkdir()
    shutil.copy(REPO / "solutions" / "05_softmax.py", folder)
    assert _grade_warm(server, folder, tmp_path / "a.json")[0] == 0
    first = server.pid
    server.process.kill()                                              # it died
    server.process.wait()
    assert _grade_warm(server, folder, tmp_path / "b.json")[0] == 0
    second = server.pid
    assert second not in (None, first)
    changed = warm_module.fingerprint() + 1
    monkeypatch.setattr(warm_module, "fingerprint", lambda: changed)   # a file of the grader changed
    assert _grade_warm(server, folder, tmp_path / "c.json")[0] == 0
    assert server.pid not in (None, first, second)
