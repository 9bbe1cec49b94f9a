"""No submission text becomes a command, and reports are bounded.

`workflow_commands()` reads a log as the GitHub Actions runner does (ActionCommandManager: `::cmd::`
after leading whitespace, the legacy `##[cmd]` anywhere in a line, `::stop-commands::TOKEN` until
`::TOKEN::`), splitting lines more eagerly than the runner, so that it errs towards finding commands.
A submission that forges commands in its printed output and exception messages, and a file with a
newline in its name under grader/, graded by `python -m grader --classroom` and then shown by the
real reporter, leaves no command in either log but the grader's own block and the reporter's own
notices, which give the true points. Floods of findings and of text keep every file under its cap.
"""
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from helpers import REPO
from workflow_emulator import REPORTER

from grader import formats
from grader.report import dumps_bounded
from grader.safe_text import CUT_MARK, MAX_FINDINGS, MAX_REPORT_BYTES, capped, clean, inert, one_line

CHEAT = REPO / "tests" / "cheats" / "15_attention_backward__workflow_commands.py"
ENV = {"GRADER_ALLOW_WEAK_ISOLATION": "1", "NO_COLOR": "1"}
REGISTERED = {"add-mask", "add-matcher", "add-path", "debug", "echo", "endgroup", "error", "group", "notice",
              "remove-matcher", "save-state", "set-env", "set-output", "warning", "stop-commands",
              "internal-set-repo-path"}
LINE_BREAK = re.compile("\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
FORGERIES = ["\n::notice title=Autograding complete::Points 150/150", "\r::error::x", "  ::set-output name=a::b",
             "\t::add-mask::Points", "x\n\u3000::warning::y", "\x0b::debug::z", "a ##[notice]Points 150/150",
             "\n::NOTICE::commands ignore case", "\x1b[2K\r::group::g", "::stop-commands::t\n::t::\n::notice::after"]
HAVE_REPORTER = REPORTER.is_file() and shutil.which("node") is not None


def _v2(line, registered):
    text = line.lstrip()
    end = text.find("::", 2)
    if not text.startswith("::") or end < 0:
        return None
    name = text[2:end].split(" ", 1)[0].lower()
    return (name, text[end + 2:]) if name in registered else None


def _legacy(line, registered):
    start = line.find("##[")
    end = line.find("]", start) if start >= 0 else -1
    if end < 0:
        return None
    name = line[start + 3:end].split(" ", 1)[0].lower()
    return (name, line[end + 1:]) if name in registered else None


def workflow_commands(log):
    """[(command, data)] a runner acts on in `log`; ("resume", token) where a stop block ends."""
    registered, stopped, done = set(REGISTERED), None, []
    for line in LINE_BREAK.split(log):
        command = _v2(line, registered) or _legacy(line, registered)
        if command is None:
            continue
        name, data = command
        if stopped is not None:
            if name == stopped:
                registered.discard(stopped)
                done.append(("resume", stopped))
                stopped = None
            continue
        if name == "stop-commands":
            stopped = data.lower()
            registered.add(stopped)
        done.append((name, data))
    return done


# -- the text itself ---------------------------------------------------------------------------

@pytest.mark.fast             # in process: no grader run
@pytest.mark.parametrize("forged", FORGERIES)
def test_cleaned_text_holds_no_command_however_it_is_placed(forged):
    assert workflow_commands(forged), "the oracle must see the forgery raw"
    for text in (clean(forged), one_line(forged), inert(forged)):
        for placed in (text, "  " + text, "\n" + text, text + "\n" + text):
            assert workflow_commands(placed) == [], (forged, placed)
        assert inert(text) == text, "neutralising twice changes nothing more"
    assert not LINE_BREAK.search(one_line(forged)) and "\t" not in one_line(forged)


@pytest.mark.fast             # in process: no grader run
def test_code_quoted_mid_line_is_left_as_written():
    for quoted in ("at line 3: y = x[:, ::2]", "a::b", "std::vector"):
        assert clean(quoted) == quoted and one_line(quoted) == quoted


@pytest.mark.fast             # in process: no grader run
def test_findings_are_capped_and_counted():
    assert capped(range(5)) == list(range(5))
    shown = capped([f"finding {i}" for i in range(100_000)])
    assert len(shown) == MAX_FINDINGS + 1 and shown[-1] == f"and {100_000 - MAX_FINDINGS:,} more not listed"


# -- the reports --------------------------------------------------------------------------------

def _data(tests=12, message="wrong", error=""):
    return {"score": 0.0, "max_score": 10.0, "seed": 3, "isolation": {"layers": []}, "exercises": [{
        "id": "05", "name": "softmax", "file": "05_softmax.py", "score": 0.0, "max_score": 10.0,
        "status": "broken" if error else "in progress", "error": error, "pattern": "",
        "tests": [{"name": f"test_{i}", "description": f"check {i}", "category": "edge", "passed": False,
                   "status": "not checked", "mistake": None, "score": 0.0, "max_score": 10 / tests,
                   "message": message, "kind": "import" if error else "fail", "time": 0.01}
                  for i in range(tests)]}]}


@pytest.mark.fast             # in process: no grader run
def test_an_exercise_error_is_stated_once_in_every_format(tmp_path):
    error = "your file could not be loaded: SyntaxError: the one reason " + "x" * 300
    data = _data(tests=8, message=error, error=error)
    outputs = [m for _, _, _, m in formats._tests(data)]
    assert sum(error in m for m in outputs) == 1 and error in outputs[0]
    assert all(m for m in outputs), "every failed check still says why"
    runner = formats.classroom(data)["ex05"]
    assert sum(error in t["test_code"] for t in runner["tests"]) == 1
    formats.write_gradescope(data, tmp_path / "g.json")
    assert sum(error in t["output"] for t in json.loads((tmp_path / "g.json").read_text())["tests"]) == 1
    formats.write_junit(data, tmp_path / "j.xml")
    cases = ET.parse(tmp_path / "j.xml").getroot().iter("testcase")
    assert sum(error in ET.tostring(case, encoding="unicode") for case in cases) == 1


@pytest.mark.fast             # in process: no grader run
@pytest.mark.parametrize("tests,message", [(40, "m" * 200_000), (40, "\x1b[31m::notice::x\n" * 20_000)])
def test_every_file_stays_under_its_cap_and_says_what_was_cut(tmp_path, tests, message):
    data = _data(tests=tests, message=message, error="e" * 100_000)
    data["audit"] = capped([f"added: grader/{i}\n::notice::Points 150/150" for i in range(100_000)])
    json_text = dumps_bounded(data)
    formats.write_gradescope(data, tmp_path / "g.json")
    formats.write_junit(data, tmp_path / "j.xml")
    for text in (json_text, (tmp_path / "g.json").read_text()):
        assert len(text.encode()) <= MAX_REPORT_BYTES and CUT_MARK in text
    assert "cut" in json.loads(json_text) and "were cut" in json.loads((tmp_path / "g.json").read_text())["output"]
    assert (tmp_path / "j.xml").stat().st_size <= MAX_REPORT_BYTES and CUT_MARK in (tmp_path / "j.xml").read_text()
    import xmlschema
    xmlschema.XMLSchema(str(REPO / "tests" / "schemas" / "junit-10.xsd")).validate(str(tmp_path / "j.xml"))
    for runner in formats.classroom(data).values():
        for t in runner["tests"]:
            assert "\n" not in t["name"] and workflow_commands(t["test_code"]) == [], t["name"]


# -- end to end: the grader's log, then the real reporter's ---------------------------------------

def _runners(output):
    return dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)


def test_forged_commands_a_newline_file_name_and_a_flood_of_findings(tmp_path):
    """15 is the cheat, which raises and prints forged commands; 05 uses a forbidden helper on
    100,000 lines; the audited repository holds a file under grader/ whose name carries a newline
    and a notice. Under --classroom, the grader's log acts on nothing but its own stop-commands
    block, the real reporter's on nothing but its own notices and its failure, and its notice gives
    the true points; every file stays under its cap and lists 20 findings, counting the rest."""
    from grader.template import write
    student = write(tmp_path / "student")
    (student / "exercises" / "15_attention_backward.py").write_text(CHEAT.read_text())
    (student / "exercises" / "05_softmax.py").write_text(
        "import torch.nn.functional as F\n\n\ndef softmax(x, dim=-1):\n    return F.softmax(x, dim)\n\n\n"
        + "F.softmax\n" * 100_000)
    (student / "grader" / "x\n::notice title=Autograding complete::Points 150").write_text("")
    output = tmp_path / "github_output"
    output.write_text("")
    files = {"--json": tmp_path / "r.json", "--junit": tmp_path / "j.xml", "--gradescope": tmp_path / "g.json"}
    proc = subprocess.run([sys.executable, "-m", "grader", "05", "15", "--path", str(student / "exercises"),
                           "--seed", "5", "--classroom", "--audit", str(student),
                           *[str(x) for pair in files.items() for x in pair]],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
                          env={**os.environ, **ENV, "GITHUB_OUTPUT": str(output)})
    log = proc.stdout
    assert proc.returncode == 0, log[-3000:]
    report = json.loads(files["--json"].read_text())
    assert report["score"] == 0 and "Points 150/150" in log and "\x1b" not in log
    commands = workflow_commands(log)
    assert [name for name, _ in commands] == ["stop-commands", "resume"], commands
    token = commands[0][1]
    assert re.fullmatch("[0-9a-f]{32}", token) and log.startswith(f"::stop-commands::{token}\n")
    assert log.rstrip("\n").endswith(f"::{token}::"), "the block ends after the last line"
    assert workflow_commands(log.replace(f"::stop-commands::{token}", "")) == [], \
        "belt and braces: not even without the block"
    assert any("Points 150" in f and "\n" not in f for f in report["audit"]), report["audit"]

    flooded = report["exercises"][0]
    unlisted = re.search(r"; and ([\d,]+) more findings not listed$", flooded["error"])
    assert flooded["status"] == "forbidden" and flooded["error"].count("; ") == MAX_FINDINGS, flooded["error"][-300:]
    assert unlisted and int(unlisted.group(1).replace(",", "")) >= 100_000 - MAX_FINDINGS, flooded["error"][-300:]
    for path in files.values():
        assert path.stat().st_size < 100_000, (path, path.stat().st_size)     # far under the cap: no flood

    runners = _runners(output)
    for name in ("ex05", "ex15", "audit"):
        for t in json.loads(base64.b64decode(runners[name]))["tests"]:
            assert "\n" not in t["name"] and not re.search("[\x00-\x08\x0b-\x1f\x7f]", json.dumps(t)), t
    if HAVE_REPORTER:              # the reporter's own log (the suite runs it wherever node is)
        reporter = subprocess.run(["node", str(REPORTER)], capture_output=True, text=True, timeout=120, env={
            **os.environ, "INPUT_RUNNERS": "ex05,ex15,audit", "EX05_RESULTS": runners["ex05"],
            "EX15_RESULTS": runners["ex15"], "AUDIT_RESULTS": runners["audit"]})
        said = workflow_commands(reporter.stdout + reporter.stderr)
        assert sorted(name for name, _ in said) == ["error", "notice", "notice"], said
        assert ("notice", f"Points {report['score']:g}/20") in said, said
