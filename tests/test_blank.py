"""Blank-file stubs (grader/blank.py): derived from the narrated stubs, so they cannot drift; the
same code and signatures; the contract kept word for word; nothing about method."""
import ast
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grader import blank  # noqa: E402

STUBS = sorted((REPO / "exercises").glob("[0-9][0-9]_*.py"))
KEPT_SECTIONS = ("Args", "Returns", "Raises", "Forbidden", "Memory", "Work")


def code_only(source):
    """The module's AST without docstrings and with every NotImplementedError message emptied."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            body[0] = ast.Pass()
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "NotImplementedError":
            node.args = []
    return ast.dump(tree)


def docstrings(source):
    tree = ast.parse(source)
    return {getattr(n, "name", "<module>"): ast.get_docstring(n, clean=False) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(n, clean=False)}


def sections(doc):
    """{header: text} for the contract sections of a docstring."""
    found = {}
    for para in re.split(r"\n\s*\n", doc):
        m = re.match(r"\s*(\w+)\b[^:\n]*:", para)
        if m and m.group(1) in KEPT_SECTIONS:
            found[m.group(1)] = para.strip()
    return found


@pytest.mark.parametrize("path", STUBS, ids=lambda p: p.stem)
def test_blank_stub_is_the_contract_and_nothing_about_method(path):
    stub = path.read_text()
    b = blank.blank_stub(stub)
    # The same code: the signatures, the given lines (10's __init__), every TODO body.
    assert code_only(b) == code_only(stub)
    # The contract, word for word: every Args / Returns / Raises / Forbidden section.
    narrated, blanked = docstrings(stub), docstrings(b)
    assert narrated.keys() == blanked.keys()
    for name, doc in narrated.items():
        if name == "<module>":
            assert blanked[name].strip().split("\n")[0] == doc.strip().split("\n")[0]
            for para in re.split(r"\n\s*\n", doc):
                if re.search(r"forbidden", para, re.I):
                    assert para.strip() in blanked[name], f"{path.name}: the rules paragraph is kept"
            continue
        assert blanked[name].strip().split("\n")[0] == doc.strip().split("\n")[0], "summary line kept"
        for header, text in sections(doc).items():
            assert text in blanked[name], f"{path.name} {name}: its {header} section is kept"
    # Nothing about method.
    assert "Steps" not in b
    assert not re.search(r"NotImplementedError\(\"TODO:", b)
    assert len(b) < len(stub)
    assert blank.blank_stub(b) == b, "deriving again changes nothing"


def test_every_narrated_stub_has_steps_to_remove():
    for path in STUBS:
        assert "Steps" in path.read_text(), f"{path.name}: a narrated stub narrates its steps"


def test_the_blank_stubs_score_zero_like_the_stubs(tmp_path):
    assert blank.main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.py")) == [p.name for p in STUBS]
    from helpers import grade
    code, data, text = grade(tmp_path, "05", "10", seed=1)
    assert [e["score"] for e in data["exercises"]] == [0.0, 0.0], text
