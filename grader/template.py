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
import hashlib
import os
import re
import sys
from pathlib import Path

from . import paths
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


# What GitHub Classroom itself adds to a student's repository: its bot commits an empty
# .github/.keep for the feedback pull request. Allowed exactly as that, and nothing else.
PLATFORM_FILES = {".github/.keep": hashlib.sha256(b"").hexdigest()}
AUDITED = ("grader", ".github", "exercises")     # exercises/: the template's files, the learner's to edit
MAX_AUDIT_BYTES = 8 << 20       # a file over it is not read (a finding), so a huge one costs no memory
MAX_FINDINGS = 100


def _digest(entry):
    """sha256 of a regular file met by the walk, read in chunks; None over MAX_AUDIT_BYTES."""
    if entry.st.st_size > MAX_AUDIT_BYTES:
        return None
    h, left = hashlib.sha256(), MAX_AUDIT_BYTES + 1
    with os.fdopen(entry.open(), "rb") as f:
        while left > 0 and (chunk := f.read(min(1 << 16, left))):
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest() if left > 0 else None


def audit(student, root=REPO):
    """What in a student's repository differs from the template: a list of findings, empty when
    untouched. Under grader/ and .github/, every file must be the template's ('modified: PATH',
    'deleted: PATH', 'added: PATH'; .pyc and __pycache__ are added files like any other), but for
    what Classroom itself adds (PLATFORM_FILES); under exercises/, the learner edits the template's
    files freely, and anything else is 'added'. A symbolic link anywhere in the repository (but
    .git/) is 'link: PATH -> TARGET', never followed; a file over MAX_AUDIT_BYTES is
    'oversize: PATH', never read. Both variants of the template (public tests or self-study) count
    as untouched. Raises paths.Refused when the repository's own path holds a link."""
    found, own, findings = {}, set(), []
    try:
        for entry in paths.walk(student, skip={".git"}):
            rel, top = entry.rel, entry.rel.split("/")[0]
            if entry.is_link:
                findings.append(f"link: {paths.shown(rel)} -> {paths.shown(entry.target)}")
            elif top not in AUDITED or entry.is_dir:
                continue
            elif not entry.is_file:
                findings.append(f"not a regular file: {paths.shown(rel)}")
            elif top == "exercises":
                own.add(rel)
            else:
                found[rel] = _digest(entry)
                if found[rel] is None:      # not read: its finding says so, in place of 'modified'
                    findings.append(f"oversize: {paths.shown(rel)} ({entry.st.st_size:,} bytes; the audit reads "
                                    f"{MAX_AUDIT_BYTES >> 20} MiB at most)")
    except paths.TooMany as e:
        findings.append(f"not audited past the first {e}")
    for rel, digest in PLATFORM_FILES.items():
        if found.get(rel) == digest:
            del found[rel]
    best = None
    for self_study in (False, True):
        template = files(root, self_study)
        expected = {k: hashlib.sha256(v).hexdigest() for k, v in template.items() if k.startswith(GUARDED)}
        exercises = {k for k in template if k.startswith("exercises/")}
        diff = [f"modified: {k}" for k in sorted(expected) if found.get(k, expected[k]) not in (expected[k], None)]
        missing = [k for k in sorted(expected) if k not in found]
        for top in GUARDED:             # a whole folder gone (or a link in its place) is one finding
            whole = [k for k in expected if k.startswith(top)]
            if whole and set(whole) <= set(missing):
                missing = [k for k in missing if not k.startswith(top)] + [f"{top} (all {len(whole)} files)"]
        diff += [f"deleted: {k}" for k in missing]
        diff += [f"added: {paths.shown(k)}" for k in sorted(found) if k not in expected]
        diff += [f"added: {paths.shown(k)}" for k in sorted(own) if k not in exercises]
        if best is None or len(diff) < len(best):
            best = diff
    findings = findings + best       # links and unread files first: a cut never hides them
    if len(findings) > MAX_FINDINGS:
        findings[MAX_FINDINGS:] = [f"... and {len(findings) - MAX_FINDINGS} more findings"]
    return findings


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
