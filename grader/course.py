"""The course's own upkeep: python -m grader.course check | sync | new NN name | export-grader DEST

    new NN name   write the skeleton of a new exercise (refuses to overwrite anything)
    export-grader DEST
                  write the grader-only tree Classroom fetches (COURSE_GRADER_REPO): grader/ with
                  the hidden tests and the course seed, what the audit compares with (exercises/,
                  .github/, template/, Makefile), requirements.txt; no solutions/ and no tests/
    sync          rewrite every list derived from the exercises: the README's table, the Classroom
                  workflow's per-exercise lines, the stubs' "Forbidden in this file:" paragraphs
    check         exit 1, one line per problem, if anything derived is stale or an exercise is
                  incomplete (files, sections, signatures, mutants, alternatives)

An exercise's metadata is written once, in its hidden test module (TITLE, FORBIDDEN,
FORBIDDEN_IMPORTS; grader/exercises.py reads them); everything else that names it is derived
here. grader/AUTHORING.md walks through adding one. Imports no torch.
"""
import argparse
import ast
import re
import sys
import textwrap
from pathlib import Path

from . import course_skeleton
from .exercises import REPO, BadMetadata, all_exercises, read_metadata

README = REPO / "README.md"
WORKFLOW = REPO / ".github" / "workflows" / "classroom.yml"
MUTANTS = REPO / "tests" / "mutants"
ALTERNATIVES = REPO / "tests" / "alternatives"
TABLE_BEGIN = "<!-- exercises: derived from grader/tests/ by `python -m grader.course sync` -->"
TABLE_END = "<!-- end of exercises -->"
READING_SECTIONS = ("## The idea", "## Shapes", "## Complexity", "## Say it out loud")
HINT_LEVELS = ("1", "2", "3")
HINT_STATUSES = {"forbidden", "broken"}        # what a `## when:` may name besides keys and tests
FORBIDDEN_PARAGRAPH = "Forbidden in this file:"
MIN_MUTANTS, MIN_ALTERNATIVES = 2, 1


class Problem(Exception):
    pass


def rel(path):
    return path.relative_to(REPO).as_posix()


# -- derived text ----------------------------------------------------------------------------
def readme_table(exercises):
    rows = [TABLE_BEGIN, "| NN | exercise | reading |", "|---|---|---|"]
    rows += [f"| {ex.id} | [{ex.title}](exercises/{ex.filename}) | [{ex.id}](exercises/{ex.stem}.md) |"
             for ex in exercises]
    return "\n".join(rows + [TABLE_END])


def derive_readme(text, exercises):
    start, end = text.find(TABLE_BEGIN), text.find(TABLE_END)
    if start < 0 or end < start:
        raise Problem(f"README.md: the exercise table's markers are missing ({TABLE_BEGIN} ... {TABLE_END})")
    text = text[:start] + readme_table(exercises) + text[end + len(TABLE_END):]
    text = re.sub(r"\(`ex01` \.\.\. `ex\d\d`\)", f"(`ex01` ... `ex{exercises[-1].id}`)", text)
    total = sum(ex.points for ex in exercises)
    return re.sub(r"Points X/\d+", f"Points X/{total:g}", text)


def _replace_once(text, pattern, new, what):
    text, n = re.subn(pattern, new, text, count=1, flags=re.M)
    if not n:
        raise Problem(f"{rel(WORKFLOW)}: cannot find {what} (it must match /{pattern}/)")
    return text


def derive_workflow(text, exercises):
    """The reporter's EXnn_RESULTS lines and runners, and the fallback's count of exercises."""
    runners = [f"ex{ex.id}" for ex in exercises] + ["audit"]

    def env_lines(m):
        indent = m.group(1)
        return "".join(f'{indent}{r.upper()}_RESULTS: "${{{{ steps.grade.outputs.{r} || '
                       f'steps.fallback.outputs.{r} }}}}"\n' for r in runners)

    text = _replace_once(text, r"^( +)(?:EX\d\d|AUDIT)_RESULTS: .*\n(?:\1(?:EX\d\d|AUDIT)_RESULTS: .*\n)*",
                         env_lines, "the reporter's EXnn_RESULTS lines")
    text = _replace_once(text, r"^( +runners: ).*$", lambda m: m.group(1) + ",".join(runners), "the runners list")
    count = len(exercises) + 1
    return _replace_once(text, r"^( +for i in range\(1, )\d+(\):)", lambda m: f"{m.group(1)}{count}{m.group(2)}",
                         "the fallback's `for i in range(1, N):` over the exercises")


def forbidden_paragraphs(ex):
    return [textwrap.fill(f"{FORBIDDEN_PARAGRAPH} {said}", width=96) for said in ex.forbidden]


def derive_stub(text, ex):
    """The stub with its module docstring's "Forbidden in this file:" paragraphs derived from the
    test module: where the first of them stood, else at the docstring's end."""
    tree = ast.parse(text)
    doc = tree.body[0] if tree.body and isinstance(tree.body[0], ast.Expr) else None
    if doc is None or not isinstance(doc.value, ast.Constant) or not isinstance(doc.value.value, str):
        raise Problem(f"{rel(ex.stub)}: it has no module docstring to hold its rules")
    lines = text.split("\n")
    raw = "\n".join(lines[doc.lineno - 1:doc.end_lineno])
    quote = raw[:3]
    if quote not in ('"""', "'''") or not raw.endswith(quote) or doc.col_offset:
        raise Problem(f"{rel(ex.stub)}: its module docstring must be a plain triple-quoted string on lines of its own")
    inner = raw[3:-3]
    ending = inner[len(inner.rstrip()):]
    paragraphs = inner.rstrip().split("\n\n")
    kept = [p for p in paragraphs if not p.startswith(FORBIDDEN_PARAGRAPH)]
    first = next((i for i, p in enumerate(paragraphs) if p.startswith(FORBIDDEN_PARAGRAPH)), len(paragraphs))
    kept[first:first] = forbidden_paragraphs(ex)
    docstring = quote + "\n\n".join(kept) + ending + quote
    return "\n".join(lines[:doc.lineno - 1] + [docstring] + lines[doc.end_lineno:])


def derived(exercises):
    """{path: the text it should hold} for every file that holds derived text."""
    out = {README: derive_readme(README.read_text(), exercises),
           WORKFLOW: derive_workflow(WORKFLOW.read_text(), exercises)}
    for ex in exercises:
        if ex.stub.is_file():
            out[ex.stub] = derive_stub(ex.stub.read_text(), ex)
    return out


# -- what a complete exercise has -------------------------------------------------------------
def signatures(path):
    """{"name" or "Class.method": "(parameters, defaults)"} of a file's public functions and classes."""
    found = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            found[node.name] = f"({ast.unparse(node.args)})"
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            found[node.name] = f"class ({', '.join(ast.unparse(b) for b in node.bases)})"
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and (not item.name.startswith("_") or item.name.endswith("__")):
                    found[f"{node.name}.{item.name}"] = f"({ast.unparse(item.args)})"
    return found


def hint_sections(text):
    return [m.group(1).strip() for m in re.finditer(r"^##\s+(.+)$", text, re.M)]


def computed_keys():
    """The keys of the error shapes close() computes (attention_errors.FIXES), read without torch."""
    tree = ast.parse((REPO / "grader" / "attention_errors.py").read_text())
    fixes = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                 and getattr(node.targets[0], "id", None) == "FIXES")
    return {key.value for key in fixes.keys}


def _calls(tree, name):
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", None)) == name]


def emitted_keys(test_module):
    """({key: what emits it}, [problem]): every mistake key a report of this exercise can carry. Each
    Mistake's key (a literal, so that it can be read here), and, where the module hands `close` an
    attention_errors.Attending, every computed error shape's key."""
    tree = ast.parse(test_module.read_text())
    keys, problems = {}, []
    for call in _calls(tree, "Mistake"):
        key = next((kw.value for kw in call.keywords if kw.arg == "key"), None)
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            keys.setdefault(key.value, "a Mistake")
        else:
            problems.append(f"the Mistake on line {call.lineno} of {rel(test_module)} has no literal key=\"...\": "
                            f"name its key, so that its hint section can be checked")
    if _calls(tree, "Attending"):
        for key in sorted(computed_keys()):
            keys.setdefault(key, "a computed error shape (attention_errors.FIXES)")
    if _checks_devices(tree):
        keys.setdefault("device_ignored", "the device test (checks.devices_kept)")
    return keys, problems


def _checks_devices(tree):
    """Whether a test module calls its code on the meta device (CHECKS_DEVICES = True)."""
    return any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "CHECKS_DEVICES" for t in n.targets)
               and isinstance(n.value, ast.Constant) and n.value.value is True for n in tree.body)


def triggers_known(test_module):
    """What a `## when:` may name: each Mistake's key, a computed error shape's key, each test's name,
    the grader's statuses."""
    tree = ast.parse(test_module.read_text())
    keys = {kw.value.value for call in _calls(tree, "Mistake")
            for kw in call.keywords if kw.arg == "key" and isinstance(kw.value, ast.Constant)}
    tests = {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    return keys | computed_keys() | tests | HINT_STATUSES | ({"device_ignored"} if _checks_devices(tree) else set())


def variants(folder, ex, suffixes):
    return sorted(p for s in suffixes for p in folder.glob(f"{ex.stem}__*{s}"))


def exercise_problems(ex):
    problems = []
    for what, path in (("stub", ex.stub), ("reference", ex.solution), ("reading", ex.reading),
                       ("hints", ex.hints), ("public test module", ex.public_tests)):
        if not path.is_file():
            problems.append(f"{ex.label}: the {what} {rel(path)} is missing")
    try:
        meta = read_metadata(ex.test_module)
        if "TITLE" not in meta:
            problems.append(f'{ex.label}: {rel(ex.test_module)} has no TITLE = "..." (the title the learner reads)')
        if ex.public_tests.is_file():
            public = read_metadata(ex.public_tests)
            for name in ("FORBIDDEN", "FORBIDDEN_IMPORTS"):
                if public.get(name) != meta.get(name):
                    problems.append(f"{ex.label}: {rel(ex.public_tests)} forbids other {name} than "
                                    f"{rel(ex.test_module)}: name the same families")
    except (BadMetadata, SyntaxError) as e:
        problems.append(f"{ex.label}: {e}")
    if ex.stub.is_file() and ex.solution.is_file():
        stub, ref = signatures(ex.stub), signatures(ex.solution)
        for name in sorted(stub.keys() | ref.keys()):
            if stub.get(name) != ref.get(name):
                problems.append(f"{ex.label}: `{name}` differs between stub and reference: "
                                f"{stub.get(name, 'missing')} in {rel(ex.stub)}, "
                                f"{ref.get(name, 'missing')} in {rel(ex.solution)}")
    if ex.reading.is_file():
        text = ex.reading.read_text()
        problems += [f"{ex.label}: {rel(ex.reading)} lacks a '{s}' section" for s in READING_SECTIONS if s not in text]
    if ex.hints.is_file():
        sections = hint_sections(ex.hints.read_text())
        problems += [f"{ex.label}: {rel(ex.hints)} lacks its '## {n}' hint" for n in HINT_LEVELS if n not in sections]
        whens = [s.split(":", 1)[1] for s in sections if re.match(r"when\s*:", s)]
        if not whens:
            problems.append(f"{ex.label}: {rel(ex.hints)} has no '## when: key' section for a known mistake")
        known = triggers_known(ex.test_module)
        named = {t.lower() for when in whens for t in (w.strip() for w in when.split(",")) if t}
        for when in whens:
            for trigger in (w.strip() for w in when.split(",") if w.strip()):
                if trigger.lower() not in {k.lower() for k in known}:
                    problems.append(f"{ex.label}: `## when: {trigger}` in {rel(ex.hints)} names no Mistake key "
                                    f"or test of {rel(ex.test_module)}")
        # A report's mistake key picks the hint: every key this exercise's tests can emit needs one.
        keys, unreadable = emitted_keys(ex.test_module)
        problems += [f"{ex.label}: {p}" for p in unreadable]
        problems += [f"{ex.label}: {rel(ex.hints)} has no `## when: {key}` section, and {rel(ex.test_module)} "
                     f"can report that key ({what})" for key, what in sorted(keys.items()) if key.lower() not in named]
    mutants = variants(MUTANTS, ex, (".py", ".patch"))
    if len(mutants) < MIN_MUTANTS:
        problems.append(f"{ex.label}: {len(mutants)} mutant(s) in {rel(MUTANTS)}/{ex.stem}__*.py or .patch; "
                        f"write at least {MIN_MUTANTS} (known mistakes the tests must catch)")
    for copy in variants(MUTANTS, ex, (".py",)):
        problems.append(f"{ex.label}: {rel(copy)} is a full copy of the reference: keep it as a patch with "
                        f"`python tests/patches.py {rel(copy)}`")
    if len(variants(ALTERNATIVES, ex, (".py",))) < MIN_ALTERNATIVES:
        problems.append(f"{ex.label}: no alternative in {rel(ALTERNATIVES)}/{ex.stem}__*.py; write at least "
                        f"{MIN_ALTERNATIVES} (another right way, which must earn full marks)")
    return problems


def check(exercises):
    """Every problem, one line each; empty when the course is whole and every derived text current."""
    problems = []
    ids = [int(ex.id) for ex in exercises]
    if ids != list(range(1, len(ids) + 1)):
        found = ", ".join(ex.id for ex in exercises)
        problems.append(f"exercise numbers must run 01, 02, ... without a gap (found {found})")
    for ex in exercises:
        problems += exercise_problems(ex)
    try:
        for path, text in derived(exercises).items():
            if path.read_text() != text:
                problems.append(f"{rel(path)} is stale: run `python -m grader.course sync`")
    except (Problem, BadMetadata, SyntaxError) as e:
        problems.append(str(e))
    return problems


def sync(exercises):
    changed = []
    for path, text in derived(exercises).items():
        if path.read_text() != text:
            path.write_text(text)
            changed.append(rel(path))
    return changed


# -- the grader-only repository Classroom fetches ------------------------------------------------
# What the workflow's token can read: the grader (hidden tests, course seed) and what its audit
# compares a student's repository with (the template's sources). Never the references, the
# mutants, the alternatives or the repository's own tests: an edited workflow can print all it reads.
EXPORTED = ("grader", "exercises", ".github", "template", "Makefile", "requirements.txt", ".gitignore")
NOT_EXPORTED = {"__pycache__", ".pytest_cache"}
EXPORT_README = """# The course's grader, exported for GitHub Classroom

Written by `python -m grader.course export-grader` from the course repository{commit}. Push it to a
private repository of its own and point the organisation variable COURSE_GRADER_REPO (and the
read-only token COURSE_GRADER_TOKEN) at it: the token then reads the grader and its hidden tests,
never the reference solutions. Regenerate it whenever the grader changes, and set
COURSE_GRADER_REF to the new commit of this repository.
"""


def export_grader(dest, root=REPO):
    """Writes the grader-only tree to dest (which must not exist or be empty); returns the files written."""
    import shutil
    import subprocess
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise Problem(f"{dest} exists and is not an empty folder")
    written = []
    for top in EXPORTED:
        source = root / top
        paths = [source] if source.is_file() else sorted(source.rglob("*")) if source.is_dir() else []
        for path in paths:
            relative = path.relative_to(root)
            if path.is_symlink() or not path.is_file() or NOT_EXPORTED & set(relative.parts) or path.suffix == ".pyc":
                continue
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            written.append(relative.as_posix())
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except OSError:
        head = ""
    (dest / "README.md").write_text(EXPORT_README.format(commit=f" at commit {head}" if head else ""))
    return written + ["README.md"]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m grader.course", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="exit 1 if anything derived is stale or an exercise incomplete")
    sub.add_parser("sync", help="rewrite every derived list from the test modules")
    new = sub.add_parser("new", help="write a new exercise's skeleton files")
    new.add_argument("id", metavar="NN")
    new.add_argument("name")
    export = sub.add_parser("export-grader", help="write the grader-only tree Classroom fetches")
    export.add_argument("dest")
    args = parser.parse_args(argv)
    try:
        if args.command == "new":
            for path in course_skeleton.write(args.id, args.name):
                print(f"wrote {rel(path)}")
            print(course_skeleton.NEXT_STEPS)
            return 0
        if args.command == "export-grader":
            written = export_grader(args.dest)
            print(f"Wrote the grader-only tree to {args.dest} ({len(written)} files; no solutions/, no tests/): "
                  "push it to the private repository COURSE_GRADER_REPO names.")
            return 0
        exercises = all_exercises()
        if args.command == "sync":
            changed = sync(exercises)
            print("\n".join(f"updated {c}" for c in changed) or "everything derived was current")
            return 0
        problems = check(exercises)
        for p in problems:
            print(f"✗ {p}")
        print(f"{len(problems)} problem(s)" if problems
              else f"✓ {len(exercises)} exercises, everything derived current")
        return 1 if problems else 0
    except (Problem, course_skeleton.Refused, BadMetadata) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
