"""Blank-file stubs for drills and interviews, derived from the narrated stubs.

    python -m grader.blank NN            print exercise NN's blank stub
    python -m grader.blank --out DIR     write every blank stub to DIR

The narrated stub (exercises/NN_name.py, or its committed version once the learner has worked in
it) is the one source. Its blank twin keeps the signatures,
any code the stub gives (10's __init__), and the contract: each docstring's summary, Args,
Returns, Raises and Forbidden sections (and 14's memory and work rules), and the module
docstring's title and rules. It drops what says how: the module docstring's explanations, every `Steps` block, and the hint in each
`raise NotImplementedError("TODO: ...")`. Since the blank stub is computed from the narrated one
each time it is needed, the two cannot drift; tests/test_blank.py checks that the result is the
contract and nothing about method.

Imports no torch.
"""
import argparse
import ast
import re
import sys
from pathlib import Path

BLANK_NOTE = ("Blank-file version, for drills and interviews: the contract only. Write it from memory,\n"
              "and annotate every tensor line with its shape in a comment, for example\n"
              "    scores = q @ k.transpose(-2, -1)  # (B, H, L, S)")
RULES = re.compile(r"forbidden|self-contained|\brules\b|may not import|imports? (numpy|only)", re.I)


def _docstring_node(node):
    body = getattr(node, "body", None)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[0].value
    return None


SECTION = re.compile(r"^\s*([A-Z][A-Za-z ]*?)\b[^:\n]*:")
KEEP = {"Args", "Arguments", "Returns", "Raises", "Forbidden", "Yields", "Memory", "Work"}   # rules graded


def contract_doc(doc):
    """A function's docstring reduced to its contract: the summary paragraph and its Args,
    Returns, Raises and Forbidden sections and graded rules (14's "Memory rule", "Work rule").
    Steps blocks and free paragraphs (the how, the mistakes to avoid) go."""
    lines = doc.split("\n")
    body = [x for x in lines[1:] if x.strip()]
    base = min((len(x) - len(x.lstrip()) for x in body), default=0)
    closing = lines[-1] if not lines[-1].strip() else ""
    paragraphs, current = [], []
    for line in lines:
        if line.strip():
            current.append(line)
        elif current:
            paragraphs.append(current)
            current = []
    if current:
        paragraphs.append(current)
    kept, keeping = [], True
    for n, para in enumerate(paragraphs):
        first = para[0]
        indent = len(first) - len(first.lstrip()) if n else base
        if n == 0:
            keeping = True
        elif indent > base:
            pass                                  # a deeper paragraph continues its section
        else:
            m = SECTION.match(first)
            keeping = bool(m) and m.group(1).split()[0] in KEEP
        if keeping:
            kept.append("\n".join(para))
    return "\n\n".join(kept) + "\n" + closing


def module_doc(doc):
    """The title line, a note on what this file is, and the paragraphs that state the rules."""
    paragraphs = [p for p in re.split(r"\n\s*\n", doc.strip()) if p.strip()]
    title = paragraphs[0].strip().split("\n")[0] if paragraphs else ""
    kept = [p.strip() for p in paragraphs[1:] if RULES.search(p)]
    return "\n\n".join([title, BLANK_NOTE] + kept) + "\n"


def _quote(text):
    """A docstring literal holding text (the stubs' docstrings hold no backslashes or triple quotes)."""
    return '"""' + text.replace("\\", "\\\\").replace('"""', '\\"""') + '"""'


def blank_stub(source):
    """The blank stub of a narrated stub's source (a str)."""
    tree = ast.parse(source)
    lines = source.split("\n")
    edits = []                                      # (first line, last line, replacement lines), 1-based

    mod = _docstring_node(tree)
    if mod is not None:
        edits.append((mod.lineno, mod.end_lineno, _quote(module_doc(mod.value)).split("\n")))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            doc = _docstring_node(node)
            if doc is not None and "\n" in doc.value:
                col = doc.col_offset
                text = contract_doc(doc.value)
                new = _quote(text).split("\n")
                new[0] = " " * col + new[0]
                edits.append((doc.lineno, doc.end_lineno, new))
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) \
                and isinstance(node.exc.func, ast.Name) and node.exc.func.id == "NotImplementedError" \
                and node.exc.args and isinstance(node.exc.args[0], ast.Constant) \
                and isinstance(node.exc.args[0].value, str) and node.lineno == node.end_lineno:
            line = lines[node.lineno - 1]
            edits.append((node.lineno, node.lineno, [line[:node.col_offset] + 'raise NotImplementedError("TODO")']))
    for first, last, new in sorted(edits, key=lambda e: e[0], reverse=True):
        lines[first - 1:last] = new
    return "\n".join(lines)


def _exercise_files(repo=None):
    from .exercises import REPO
    root = Path(repo) if repo else REPO
    return sorted((root / "exercises").glob("[0-9][0-9]_*.py"))


def fresh_stub(path, repo=None):
    """The untouched stub of an exercise file, as text: the file itself while it is still a stub,
    else the committed version with the most `raise NotImplementedError` (a learner's commits only
    remove them), else the copy a drill kept in .grade/pristine/; None if there is none."""
    from .study.stubs import git_versions, todo_count
    best = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None
    best_n = todo_count(best) if best is not None else 0
    candidates = git_versions(f"exercises/{path.name}", repo=repo)
    if repo is None:
        from .study.state import cached_stub
        candidates = [*candidates, cached_stub(path.name) or b""]
    for content in candidates:                  # newest first: keep the newest of the most-TODO versions
        text = content.decode("utf-8", "replace")
        n = todo_count(text)
        if n > best_n:
            best, best_n = text, n
    return best if best_n else None


def main(argv=None, repo=None):
    parser = argparse.ArgumentParser(prog="python -m grader.blank", description=__doc__.split("\n\n")[0])
    parser.add_argument("exercise", nargs="*")
    parser.add_argument("--out", help="write the blank stubs to this folder")
    args = parser.parse_args(argv)
    files = _exercise_files(repo)
    if args.exercise:
        want = {e.zfill(2) for e in args.exercise}
        files = [f for f in files if f.name[:2] in want]
        if not files:
            print(f"blank: no exercise {', '.join(sorted(want))}", file=sys.stderr)
            return 2
    for f in files:
        stub = fresh_stub(f, repo)
        if stub is None:
            print(f"blank: no stub of {f.name} found: the file has no TODO left and no committed version "
                  f"has one (clone the course with git, or fetch that file again)", file=sys.stderr)
            return 2
        text = blank_stub(stub)
        if args.out:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            (out / f.name).write_text(text)
        else:
            print(f"# ---- {f.name} (blank)\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
