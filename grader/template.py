"""The repository students get, and the audit that compares a student's repository with it.

python -m grader.template DEST [--self-study]   (what `make student-template` runs)

The template holds the exercises (stubs, readings, hints), the grader, the Classroom workflow, the
Makefile, requirements.txt, .gitignore and a README without the instructor's sections. Without
--self-study it ships the public tests (grader/public/, shapes and a few equivalence checks) in
place of the hidden ones: the full grade runs in Classroom or Gradescope, with the course's
grader. --self-study keeps the hidden tests, for learners on their own. Standard library only.
"""
import argparse
import re
import sys
from pathlib import Path

from .exercises import REPO

GUARDED = (".github/", "grader/")          # what the audit compares with the template
INSTRUCTOR_ONLY = ("make solution", "make bench", "make mutants", "--path solutions", "make test ",
                   "make student-template", "make gradescope")
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


def student_readme(text, self_study):
    """README.md without the instructors' and contributors' sections and their commands."""
    out, skipping = [], False
    for line in text.splitlines():
        if line.startswith("## "):
            skipping = line.startswith(("## For instructors", "## For contributors"))
        if skipping or any(cmd in line for cmd in INSTRUCTOR_ONLY):
            continue
        out.append(line)
    note = ("Your grade comes from the course's full hidden tests, run by GitHub Classroom (or Gradescope) "
            "when you push or submit. `make grade` here runs " +
            ("the same hidden tests, for study on your own." if self_study else
             "a public subset (shapes and a few equivalence checks): a full public score does not "
             "promise a full grade.") +
            " Only `exercises/` is yours to edit: changes to `grader/` or `.github/` do not change "
            "your grade, and your instructor sees them.")
    text = "\n".join(out).rstrip() + "\n"
    return re.sub(r"\n## What this is\n", "\n" + note + "\n\n## What this is\n", text, count=1)


def files(root=REPO, self_study=False):
    """{path in the template: bytes} for the whole student repository."""
    root = Path(root)
    public = not self_study and has_public_tests(root)
    out = {}
    for top in ("exercises", "grader", "Makefile", "requirements.txt", ".gitignore", ".github"):
        for rel, path in _walk(root, top):
            if rel.startswith("grader/public/"):
                continue
            if public and re.fullmatch(r"grader/tests/test_\d\d_\w+\.py", rel):
                continue
            out[rel] = path.read_bytes()
    if public:
        for rel, path in _walk(root, "grader/public"):
            out["grader/tests/" + rel.removeprefix("grader/public/")] = path.read_bytes()
    out["README.md"] = student_readme((root / "README.md").read_text(), self_study or not public).encode()
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
