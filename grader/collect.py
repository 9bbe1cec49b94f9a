"""python -m grader.collect SUBMISSION DEST [--results FILE]

Finds the exercise files (NN_name.py, named as in exercises/) anywhere in SUBMISSION, at any depth
(a Gradescope upload of loose files, of exercises/, of the whole repository, or of a folder that
holds it), and copies them to DEST for `python -m grader --path DEST`. Two different files with
one exercise's name make the submission ambiguous: nothing is graded, and --results FILE gets a
Gradescope results.json that says which files clash. Standard library only.
"""
import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from .exercises import all_exercises

SKIP = {"__pycache__", "__MACOSX", ".git", ".venv", "venv", "node_modules"}


def find(submission):
    """({file name: path}, [problem]) for the exercise files found under `submission`."""
    wanted = {ex.filename for ex in all_exercises()}
    seen = {}
    for folder, dirs, files in os.walk(submission):          # does not follow links
        dirs[:] = sorted(d for d in dirs if d not in SKIP and not d.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            if name in wanted and path.is_file() and not path.is_symlink():
                seen.setdefault(name, []).append(path)
    found, problems = {}, []
    for name, paths in sorted(seen.items()):
        contents = {p.read_bytes() for p in paths}
        if len(contents) > 1:
            where = ", ".join(str(p.relative_to(submission)) for p in paths)
            problems.append(f"{name} appears {len(paths)} times with different contents ({where}): "
                            "keep the one you want graded, delete the others, and submit again.")
        else:
            found[name] = min(paths, key=lambda p: (len(p.parts), str(p)))
    return found, problems


def refusal(problems, found):
    lines = ["Your submission was not graded: it is ambiguous."] + problems
    lines.append(f"Exercise files found: {', '.join(sorted(found)) or 'none'}.")
    return {"score": 0, "output": "\n".join(lines), "visibility": "visible", "stdout_visibility": "visible",
            "tests": []}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m grader.collect", description=__doc__.split("\n\n")[1])
    parser.add_argument("submission")
    parser.add_argument("dest")
    parser.add_argument("--results", help="where to write Gradescope's results.json when refusing")
    args = parser.parse_args(argv)
    submission, dest = Path(args.submission), Path(args.dest)
    found, problems = find(submission) if submission.is_dir() else ({}, [])
    if problems:
        print("\n".join(problems), file=sys.stderr)
        if args.results:
            Path(args.results).write_text(json.dumps(refusal(problems, found), indent=2))
        return 3
    dest.mkdir(parents=True, exist_ok=True)
    for name, path in found.items():
        shutil.copyfile(path, dest / name)
        print(f"found {path.relative_to(submission)}")
    if not found:
        print(f"no exercise file (NN_name.py) anywhere in {submission}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
