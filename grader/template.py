"""The repository students get, and the audit that compares a student's repository with it.

python -m grader.template DEST [--self-study]   (what `make student-template` runs)

The template holds the exercises (stubs, readings, hints), the grader, the Classroom workflow, the
Makefile, requirements.txt, .gitignore and a README written for students (template/README.md).
Without --self-study it is the graded template: the public tests (grader/public/, shapes and a
few equivalence checks) in place of the hidden ones, hints without their near-code level, and a
marker (grader/PUBLIC_TESTS_ONLY) that makes every local report say it ran the public tests only;
the grade runs in Classroom or Gradescope, with the course's grader. --self-study keeps the hidden
tests and every hint level, for learners on their own. Never in either: solutions/, tests/,
bench/, the course config (grader/course.cfg: the course's seed). Standard library only.
"""
import argparse
import re
import sys
from pathlib import Path

from .exercises import REPO

GUARDED = (".github/", "grader/")          # what the audit compares with the template
COURSE_ONLY = {"grader/course.cfg"}        # the course's seed stays with the course
PUBLIC_MARKER = "grader/PUBLIC_TESTS_ONLY"
PUBLIC_MARKER_TEXT = ("This copy's grader/tests/ holds the public tests only: its reports say so, and the course "
                      "grade comes from Classroom, with the course's hidden tests.\n")
README_SOURCE = Path("template") / "README.md"
SKIP_PARTS = {"__pycache__", ".pytest_cache"}


def _walk(root, top):
    base = root / top
    if base.is_file():
        yield top, base
        return
    for p in sorted(base.rglob("*")):
        if p.is_file() and not p.is_symlink() and not SKIP_PARTS & set(p.parts) and p.suffix != ".pyc":
            yield p.relative_to(root).as_posix(), p


def has_public_tests(root=REPO):
    hidden = sorted(p.name for p in (root / "grader" / "tests").glob("test_[0-9][0-9]_*.py"))
    public = sorted(p.name for p in (root / "grader" / "public").glob("test_[0-9][0-9]_*.py"))
    return bool(hidden) and hidden == public


def student_readme(root=REPO, self_study=False):
    """The student README, from template/README.md: the lines of this variant's blocks, the table of
    exercises in place of its marker, the source's own comment left out."""
    from .course import readme_table
    from .exercises import all_exercises
    text = (Path(root) / README_SOURCE).read_text()
    text = re.sub(r"\A<!--.*?-->\n", "", text, count=1, flags=re.S)
    keep, skip = ("self-study", "graded") if self_study else ("graded", "self-study")
    text = re.sub(rf"<!-- {skip} -->\n.*?<!-- end {skip} -->\n", "", text, flags=re.S)
    text = re.sub(rf"<!-- (end )?{keep} -->\n", "", text)
    table = readme_table(all_exercises()).split("\n")[1:-1]           # without the sync markers
    return text.replace("<!-- exercises -->", "\n".join(table))


def without_near_code(text):
    """A hint file without its level-3 section (near-code), the other levels and `## when:` kept."""
    from .study.hints import HEADING
    out, dropping = [], False
    for line in text.splitlines(keepends=True):
        m = HEADING.match(line.rstrip("\n"))
        if m:
            dropping = bool(re.fullmatch(r"(?:level\s*)?3\b.*", m.group(1), re.I))
        if not dropping:
            out.append(line)
    return "".join(out)


def files(root=REPO, self_study=False):
    """{path in the template: bytes} for the whole student repository."""
    root = Path(root)
    graded_copy = (root / PUBLIC_MARKER).is_file()      # root is a graded template itself (trial mode)
    public = not self_study and (graded_copy or has_public_tests(root))
    out = {}
    for top in ("exercises", "grader", "Makefile", "requirements.txt", ".gitignore", ".github"):
        for rel, path in _walk(root, top):
            if rel.startswith("grader/public/") or rel in COURSE_ONLY or (self_study and rel == PUBLIC_MARKER):
                continue
            if public and not graded_copy and re.fullmatch(r"grader/tests/test_\d\d_\w+\.py", rel):
                continue
            data = path.read_bytes()
            if public and re.fullmatch(r"exercises/hints/\d\d_\w+\.md", rel):
                data = without_near_code(data.decode()).encode()
            out[rel] = data
    if public:
        for rel, path in _walk(root, "grader/public"):
            out["grader/tests/" + rel.removeprefix("grader/public/")] = path.read_bytes()
        out[PUBLIC_MARKER] = PUBLIC_MARKER_TEXT.encode()
    if (root / README_SOURCE).is_file():       # the course's repository and its export have it
        out["README.md"] = student_readme(root, self_study or not public).encode()
    return out


def audit(student, root=REPO):
    """What in a student's repository differs from the template under grader/ and .github/:
    a list of 'modified: PATH', 'added: PATH', 'deleted: PATH' (empty when untouched).
    Both variants of the template (public tests or self-study) count as untouched."""
    student = Path(student)
    found = {}
    for top in ("grader", ".github"):
        if (student / top).exists():
            found.update((rel, p.read_bytes()) for rel, p in _walk(student, top))
    best = None
    for self_study in (False, True):
        expected = {k: v for k, v in files(root, self_study).items() if k.startswith(GUARDED)}
        findings = [f"modified: {k}" for k in sorted(expected) if k in found and found[k] != expected[k]]
        findings += [f"deleted: {k}" for k in sorted(expected) if k not in found]
        findings += [f"added: {k}" for k in sorted(found) if k not in expected]
        if best is None or len(findings) < len(best):
            best = findings
    return best


def write(dest, self_study=False, root=REPO):
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise SystemExit(f"{dest} exists and is not empty")
    if not (Path(root) / README_SOURCE).is_file():
        raise SystemExit(f"{Path(root) / README_SOURCE} is missing: the student README is built from it")
    for rel, data in files(root, self_study).items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        if data.startswith(b"#!"):
            target.chmod(0o755)
    return dest


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m grader.template", description=__doc__.split("\n\n")[0])
    parser.add_argument("dest")
    parser.add_argument("--self-study", action="store_true", help="keep the hidden tests (learners on their own)")
    args = parser.parse_args(argv)
    write(args.dest, args.self_study)
    kind = ("the hidden tests (self-study)" if args.self_study or not has_public_tests()
            else "the public tests only (the full grade runs in Classroom or Gradescope)")
    print(f"Wrote the student repository to {args.dest}: exercises, grader with {kind}, workflow; "
          "no solutions/, tests/ or bench/.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
