"""python -m grader.course: the repository passes `check`; `check` names each kind of problem; and
adding an exercise is `new`, writing its content, `sync`, with no hand edit anywhere else."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from helpers import REPO

# What the course tools and one graded exercise need of the repository (no tests, no bench).
COPIED = ("grader", "exercises", "solutions", "tests/mutants", "tests/alternatives", "tests/patches.py",
          "README.md", ".github", "pytest.ini", ".gitignore")


def course(cwd, *args):
    return subprocess.run([sys.executable, "-m", "grader.course", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def copy(tmp_path):
    root = tmp_path / "course"
    for rel in COPIED:
        source = REPO / rel
        if source.is_dir():
            shutil.copytree(source, root / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, root / rel)
    return root


def test_the_repository_passes_check():
    proc = course(REPO, "check")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_imports_no_torch():
    proc = subprocess.run([sys.executable, "-c", "import sys; from grader import course; "
                           "course.check(course.all_exercises()); print('torch' in sys.modules)"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "False", proc.stdout + proc.stderr


def edit(path, old, new):
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_check_names_every_problem_and_sync_mends_what_is_derived(copy):
    edit(copy / "grader/tests/test_05_softmax.py", 'TITLE = "stable softmax over the keys"',
         'TITLE = "a stable softmax"')
    edit(copy / "grader/tests/test_08_output_projection.py", "FORBIDDEN = LINEAR_LAYER\n", "")
    edit(copy / "exercises/02_split_heads.py", "def split_heads(x, num_heads):", "def split_heads(x, heads=2):")
    edit(copy / "exercises/hints/03_scores.md", "\n## 2\n", "\n## two\n")
    (copy / "exercises/hints/04_mask.md").write_text((copy / "exercises/hints/04_mask.md").read_text()
                                                      + "\n## when: no_such_mistake\nText.\n")
    edit(copy / "exercises/06_weight_values.md", "## Complexity", "## Cost")
    for mutant in (copy / "tests/mutants").glob("07_merge_heads__*.*"):
        mutant.unlink()
    (copy / "grader/public/test_09_scaled_dot_product_attention.py").unlink()
    edit(copy / ".github/workflows/classroom.yml", "runners: ex01,", "runners: ")

    proc = course(copy, "check")
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    for expected in ("README.md is stale", "exercises/08_output_projection.py is stale",
                     ".github/workflows/classroom.yml is stale",
                     "02 split_heads: `split_heads` differs between stub and reference: (x, heads=2)",
                     "03 scores: exercises/hints/03_scores.md lacks its '## 2' hint",
                     "04 mask: `## when: no_such_mistake`",
                     "06 weight_values: exercises/06_weight_values.md lacks a '## Complexity' section",
                     "07 merge_heads: 0 mutant(s)",
                     "08 output_projection: grader/public/test_08_output_projection.py forbids other FORBIDDEN",
                     "09 scaled_dot_product_attention: the public test module"):
        assert expected in out, f"{expected!r} not in:\n{out}"

    assert course(copy, "sync").returncode == 0
    assert "| 05 | [a stable softmax](exercises/05_softmax.py) |" in (copy / "README.md").read_text()
    assert "torch.nn.Linear" not in (copy / "exercises/08_output_projection.py").read_text().split('"""')[1]
    assert "runners: ex01,ex02," in (copy / ".github/workflows/classroom.yml").read_text()
    left = course(copy, "check").stdout
    assert "stale" not in left and "02 split_heads: `split_heads` differs" in left


def test_new_refuses_bad_names_and_taken_places(copy):
    for args, says in ((["new", "16", "Toy"], "lowercase words"), (["new", "1x", "toy"], "one or two digits"),
                       (["new", "05", "toy"], "exists already"), (["new", "16", "softmax"], "exists already")):
        proc = course(copy, *args)
        assert proc.returncode == 2 and says in proc.stderr, proc.stderr
    (copy / "exercises/hints/16_toy.md").write_text("mine\n")
    proc = course(copy, "new", "16", "toy")
    assert proc.returncode == 2 and "refusing to overwrite" in proc.stderr
    assert (copy / "exercises/hints/16_toy.md").read_text() == "mine\n"
    assert not (copy / "exercises/16_toy.py").exists()


TOY_SOLUTION = '''"""Exercise 16: double a tensor (reference)."""
import torch


def toy(x):
    return 2 * x
'''

TOY_TESTS = '''

def oracle(x):
    """The right answer, in float64."""
    return x.to(torch.float64) * 2


MISTAKES = [Mistake("toy", "the input comes back unchanged", STEP, "Multiply by two.",
                    lambda x: x.to(torch.float64), key="unchanged")]


@graded("equivalence", 2)
def test_matches_the_oracle(ex, rng):
    """doubles every entry"""
    x = randn(rng, 2, 3, 4, dtype=torch.float64)
    close(ex.toy(x), oracle(x), ex)
'''


def test_adding_exercise_16_touches_only_its_own_files(copy):
    git = lambda *a: subprocess.run(["git", *a], cwd=copy, capture_output=True, text=True, check=True)  # noqa: E731
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "course")

    proc = course(copy, "new", "16", "toy")
    assert proc.returncode == 0, proc.stderr
    assert "sync" in proc.stdout
    assert "16 toy: 0 mutant(s)" in course(copy, "check").stdout, "check asks for what `new` cannot write"

    (copy / "solutions/16_toy.py").write_text(TOY_SOLUTION)
    hidden = copy / "grader/tests/test_16_toy.py"
    text = hidden.read_text()
    hidden.write_text(text[:text.index("\n\ndef oracle")] + TOY_TESTS
                      + text[text.index("\n\n@graded(\"rules\""):])
    edit(hidden, 'TITLE = "toy"', 'TITLE = "double a tensor"')
    edit(copy / "grader/public/test_16_toy.py", "close(ex.toy(x), x, ex)", "close(ex.toy(x), 2 * x, ex)")
    edit(copy / "exercises/hints/16_toy.md", "## when: test_matches_the_oracle", "## when: unchanged")
    for what, header, body in (("triple", "uncatalogued: triples", "3 * x"), ("same", "mistake: unchanged", "x.clone()")):
        (copy / f"tests/mutants/16_toy__{what}.py").write_text(f"# {header}\n" + TOY_SOLUTION.replace("2 * x", body))
    mutants = sorted(str(p.relative_to(copy)) for p in (copy / "tests/mutants").glob("16_toy__*.py"))
    proc = subprocess.run([sys.executable, "tests/patches.py", *mutants], cwd=copy, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr            # each becomes a small patch
    (copy / "tests/alternatives/16_toy__add.py").write_text("def toy(x):\n    return x + x\n")

    assert course(copy, "sync").returncode == 0
    proc = course(copy, "check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stub = (copy / "exercises/16_toy.py").read_text()
    assert "Forbidden in this file: NumPy" in stub
    assert "| 16 | [double a tensor](exercises/16_toy.py) |" in (copy / "README.md").read_text()
    workflow = (copy / ".github/workflows/classroom.yml").read_text()
    assert "EX16_RESULTS:" in workflow and "ex15,ex16,audit" in workflow and "range(1, 17)" in workflow

    env = {**os.environ, "NO_COLOR": "1"}
    for path, score in (("solutions", 10), ("exercises", 0)):
        out = copy.parent / f"{path}.json"
        proc = subprocess.run([sys.executable, "-m", "grader", "16", "--path", path, "--seed", "1", "--json", str(out)],
                              cwd=copy, capture_output=True, text=True, timeout=300, env=env)
        report = json.loads(out.read_text())
        assert [e["score"] for e in report["exercises"]] == [score], proc.stdout + proc.stderr

    git("add", "-A")
    stat = git("diff", "--cached", "--stat").stdout
    print(stat)
    changed = set(re.findall(r"^ (\S+)\s+\|", stat, re.M))
    own = {"exercises/16_toy.py", "exercises/16_toy.md", "exercises/hints/16_toy.md", "solutions/16_toy.py",
           "grader/tests/test_16_toy.py", "grader/public/test_16_toy.py", "tests/mutants/16_toy__triple.patch",
           "tests/mutants/16_toy__same.patch", "tests/alternatives/16_toy__add.py"}
    derived = {"README.md", ".github/workflows/classroom.yml"}
    assert changed == own | derived, stat


def test_every_family_a_test_module_may_name_is_worded_and_exists():
    from grader import forbidden, guards
    for family in forbidden.FAMILIES:
        names = getattr(guards, family, None)
        assert isinstance(names, tuple) and names, f"grader.guards has no family {family}"
    worded = {name for name, value in vars(guards).items() if name.isupper() and name.endswith(
        ("_FAMILY", "_LAYER", "_CALLS", "_LIBRARIES"))}
    assert worded == set(forbidden.FAMILIES)


def test_check_wants_a_hint_for_every_key_a_test_can_report(copy):
    # A Mistake's key, and the computed error shapes of a module that hands `close` an Attending.
    edit(copy / "exercises/hints/10_multi_head_attention.md", "## when: value_defaults_to_query", "## value")
    edit(copy / "exercises/hints/13_kv_cache.md", "## when: diagonal_blocked, one_key_past_diagonal",
         "## when: one_key_past_diagonal")
    edit(copy / "grader/tests/test_14_flash_attention.py", 'key="nan_rows"', "key=NAN_ROWS")
    out = course(copy, "check").stdout
    for expected in ("10 multi_head_attention: exercises/hints/10_multi_head_attention.md has no "
                     "`## when: value_defaults_to_query` section",
                     "13 kv_cache: exercises/hints/13_kv_cache.md has no `## when: diagonal_blocked` section",
                     "14 flash_attention: the Mistake on line"):
        assert expected in out, f"{expected!r} not in:\n{out}"
    assert "one_key_past_diagonal` section" not in out
