"""Mutants stored as small unified diffs against the reference, and a strict applier of our own.

tests/mutants/NN_name__slug.patch reads:

    # mistake: key   (its title)          <- the header: every line before `---` is put back, as is,
    --- solutions/NN_name.py                 on top of the patched reference
    +++ tests/mutants/NN_name__slug.py
    @@ -20,7 +20,7 @@
     context
    -the reference's line
    +the buggy line

The applier allows no fuzz and no offset: every context and removed line must be exactly the
reference's line at exactly the stated place. A reference edited under a mutant makes the patch
fail, loudly, rather than silently apply elsewhere or unbug the mutant.

`python tests/patches.py FILE.py ...` turns full mutant files (the reference with one bug and the
header on top) into patches beside them, checks that each patch gives back the file byte for byte,
and deletes the file.
"""
import difflib
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HUNK = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class PatchError(Exception):
    """A patch that is malformed or does not apply exactly."""


def reference_of(name):
    """solutions/NN_name.py for a mutant named NN_name__slug.patch (or .py)."""
    return REPO / "solutions" / (Path(name).name.split("__")[0] + ".py")


def apply(patch_text, original, name="patch"):
    """The patched text: the preamble, then `original` with every hunk applied exactly."""
    lines = patch_text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith("--- ")), None)
    if start is None or start + 1 >= len(lines) or not lines[start + 1].startswith("+++ "):
        raise PatchError(f"{name}: no `--- solutions/...` and `+++ ...` lines: not a unified diff")
    if not original.endswith("\n"):
        raise PatchError(f"{name}: the reference does not end with a newline")
    source = original.splitlines(keepends=True)
    out, at, pos, hunk = [], 0, start + 2, 0
    if pos == len(lines):
        raise PatchError(f"{name}: the patch has no hunk: the mutant would be the reference itself")
    while pos < len(lines):
        hunk += 1
        m = HUNK.match(lines[pos])
        if not m:
            raise PatchError(f"{name}: line {pos + 1}: expected a hunk header `@@ -a,b +c,d @@`, "
                             f"found {lines[pos].rstrip()!r}")
        old_len, new_len = int(m[2] or 1), int(m[4] or 1)
        begin = int(m[1]) - (1 if old_len else 0)       # `-a,0` inserts after line a
        if begin < at:
            raise PatchError(f"{name}: hunk {hunk} starts at line {m[1]}, inside or before the previous hunk")
        out += source[at:begin]
        at, old_seen, new_seen = begin, 0, 0
        pos += 1
        while pos < len(lines) and (old_seen < old_len or new_seen < new_len):
            line = lines[pos]
            tag, text = (" ", line) if line == "\n" else (line[:1], line[1:])   # an editor trimmed " \n"
            if tag not in " -+":
                raise PatchError(f"{name}: line {pos + 1}: a hunk line must start with ' ', '-' or '+', "
                                 f"found {line.rstrip()!r}")
            if tag in " -":
                found = source[at] if at < len(source) else "(end of file)"
                if found != text:
                    raise PatchError(f"{name}: hunk {hunk} does not apply: {reference_of(name).name} line {at + 1} "
                                     f"is {found.rstrip()!r}, the patch expects {text.rstrip()!r}. The reference "
                                     f"changed under this mutant: remake the patch (tests/patches.py)")
                at, old_seen = at + 1, old_seen + 1
            if tag in " +":
                out.append(text)
                new_seen += 1
            pos += 1
        if (old_seen, new_seen) != (old_len, new_len):
            raise PatchError(f"{name}: hunk {hunk} is cut short: it promises {old_len} old and {new_len} new "
                             f"lines, holds {old_seen} and {new_seen}")
    return "".join(lines[:start]) + "".join(out + source[at:])


def make(mutant_text, original, name):
    """The patch for a full mutant file: its header lines (up to the reference's first line) as
    the preamble, then the diff of the rest against the reference."""
    if not mutant_text.endswith("\n"):
        raise PatchError(f"{name}: end the file with a newline")
    lines = mutant_text.splitlines(keepends=True)
    first = original.splitlines(keepends=True)[0]
    cut = next((i for i, line in enumerate(lines) if not line.startswith("#") or line == first), len(lines))
    header, body = lines[:cut], lines[cut:]
    diff = difflib.unified_diff(original.splitlines(keepends=True), body,
                                f"solutions/{reference_of(name).name}", f"tests/mutants/{Path(name).stem}.py")
    patch = "".join(header) + "".join(diff)
    if apply(patch, original, name) != mutant_text:
        raise PatchError(f"{name}: the patch does not give back the file byte for byte")
    return patch


def convert(path):
    path = Path(path)
    patch = make(path.read_text(), reference_of(path.name).read_text(), path.name)
    path.with_suffix(".patch").write_text(patch)
    path.unlink()
    return path.with_suffix(".patch")


if __name__ == "__main__":
    if not sys.argv[1:]:
        sys.exit(__doc__)
    for arg in sys.argv[1:]:
        print(convert(arg))
