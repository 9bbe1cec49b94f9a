"""python -m grader.collect SUBMISSION DEST [--results FILE]

Finds the exercise files (NN_name.py, named as in exercises/) anywhere in SUBMISSION, at any depth
(a Gradescope upload of loose files, of exercises/, of the whole repository, or of a folder that
holds it), and copies them to DEST for `python -m grader --path DEST`. Two different files with
one exercise's name make the submission ambiguous: nothing is graded, and --results FILE gets a
Gradescope results.json that says which files clash. Nothing is followed: a symbolic link at an
exercise file's name costs that exercise, and any other link in the submission refuses it whole,
with the reason. Standard library only.
"""
import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

from . import paths
from .exercises import all_exercises

SKIP = {"__pycache__", "__MACOSX", ".git", ".venv", "venv", "node_modules"}     # never opened, whatever they hold
MAX_BYTES = int(os.environ.get("GRADER_MAX_SOURCE_KB", "1024")) << 10             # as grader/session.py


def find(submission):
    """({file name: (where, its bytes or a Link)}, [problem]) for the exercise files found under
    `submission`. Nothing is followed (grader/paths.py): a link at an exercise file's name is kept
    as a Link, which costs that exercise; any other link in the submission, or in its path, is a
    problem that refuses the whole submission."""
    wanted = {ex.filename for ex in all_exercises()}
    kept, digests, problems = {}, {}, []        # kept: the shallowest copy of each; digests: every copy's
    try:
        for entry in paths.walk(submission, skip=lambda name: name in SKIP or name.startswith(".")):
            name = entry.rel.rsplit("/", 1)[-1]
            if entry.is_link and name not in wanted:
                problems.append(f"{paths.shown(entry.rel)} is a symbolic link (to {paths.shown(entry.target)}): a "
                                "submission is a folder of regular files, and the grader follows no link.")
            if name not in wanted or not (entry.is_file or entry.is_link):
                continue
            data = Link(entry.target) if entry.is_link else _read(entry)
            content = os.fsencode("link to " + data) if entry.is_link else data
            digests.setdefault(name, {}).setdefault(hashlib.sha256(content).digest(), []).append(entry.rel)
            rank = (entry.rel.count("/"), entry.rel)
            if name not in kept or rank < kept[name][0]:
                kept[name] = (rank, data)
    except (FileNotFoundError, NotADirectoryError):
        return {}, []
    except paths.Refused as e:
        return {}, [f"{e}."]
    except paths.TooMany as e:
        return {}, [f"The submission holds more than {e}: submit your exercise files alone."]
    if problems:
        return {}, problems
    found = {}
    for name, copies in sorted(digests.items()):
        if len(copies) > 1:
            where = ", ".join(paths.shown(rel) for rels in copies.values() for rel in rels)
            problems.append(f"{name} is ambiguous: it appears {sum(map(len, copies.values()))} times with different contents ({where}): "
                            "keep the one you want graded, delete the others, and submit again.")
        else:
            (_, rel), data = kept[name]
            found[name] = (rel, data)
    return found, problems


class Link(str):
    """A link found at an exercise file's name: its target, never followed."""


def _read(entry):
    """A regular file's bytes, at most one more than the grader reads (it refuses a longer one)."""
    with os.fdopen(entry.open(), "rb") as f:
        return f.read(MAX_BYTES + 1)


def refusal(problems, found):
    lines = ["Your submission was not graded."] + problems
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
    found, problems = find(submission)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        if args.results:
            Path(args.results).write_text(json.dumps(refusal(problems, found), indent=2))
        return 3
    dest.mkdir(parents=True, exist_ok=True)
    for name, (rel, data) in found.items():
        if isinstance(data, Link):      # kept as the link it is: the grader refuses it, for this exercise alone
            os.symlink(data, dest / name)
            print(f"found {paths.shown(rel)}, a symbolic link: not graded")
        else:
            (dest / name).write_bytes(data)
            print(f"found {paths.shown(rel)}")
    if not found:
        print(f"no exercise file (NN_name.py) anywhere in {submission}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
