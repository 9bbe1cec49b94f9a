"""Pairs of submissions whose code is near-identical once names and layout are normalised
(`python -m grader batch --similarity FILE`).

Each exercise file becomes a sequence of tokens: comments, docstrings, blank lines and indentation
dropped; every identifier one placeholder (a name after a dot is kept: it names the library call);
every string literal one placeholder; numbers and operators as they are. Its fingerprints are the
winnowed hashes of its K-token windows, each within one top-level statement (Schleimer, Wilkerson
and Aiken's winnowing, as MOSS uses), less every window of the stub, so that the code everyone was
given matches nobody. Two
submissions' similarity on an exercise is the Jaccard index of their fingerprints; a pair at
THRESHOLD or above is flagged, with each one's similarity to the reference beside it (short
exercises leave few ways to write them: two correct files are often alike, and alike the reference).
"""
import hashlib
import io
import keyword
import os
import stat
import tokenize
from itertools import combinations

from . import paths

K = 8                   # tokens per window: a statement or two
WINDOW = 4              # winnowing keeps the least hash of every WINDOW consecutive windows
THRESHOLD = 0.8         # a pair at or above it is flagged
MIN_PRINTS = 6          # a file with fewer fingerprints of its own is too short to say anything
MAX_BYTES = 1 << 20
TOP = "\n"             # between two top-level statements (no token is a bare newline)

_DROP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
         tokenize.ENCODING, tokenize.ENDMARKER}
_STRINGS = {tokenize.STRING} | {getattr(tokenize, n) for n in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END")
                                if hasattr(tokenize, n)}


def tokens(source):
    """The normalised tokens of Python source, or None when it does not tokenize."""
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return None
    out, starts, prev = [], True, None
    for i, t in enumerate(toks):
        if t.type in _DROP:
            starts = starts or t.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
            continue
        if starts and t.start[1] == 0 and out and out[-1] != TOP:
            out.append(TOP)             # windows stay inside one top-level statement: moving a function moves them all
        if t.type in _STRINGS and starts and _alone(toks, i):
            continue                    # a docstring, or a string as a statement: no code
        if t.type == tokenize.NAME:
            word = t.string if keyword.iskeyword(t.string) or prev == "." else "N"
        elif t.type in _STRINGS:
            word = "S"
        else:
            word = t.string
        if not (word == "S" and out and out[-1] == "S"):     # one placeholder per string, f-strings too
            out.append(word)
        prev, starts = t.string, False
    return out


def _alone(toks, i):
    """Whether the string at i is a whole statement (the next code token ends the line)."""
    for t in toks[i + 1:]:
        if t.type in _STRINGS:
            continue
        if t.type in (tokenize.COMMENT, tokenize.NL):
            continue
        return t.type in (tokenize.NEWLINE, tokenize.ENDMARKER)
    return True


def _hashes(words):
    """The hash of every window of K tokens that lies within one top-level statement."""
    out, start = [], 0
    for end in [i for i, w in enumerate(words) if w == TOP] + [len(words)]:
        part = words[start:end]
        out += [int.from_bytes(hashlib.blake2b("\x00".join(part[i:i + K]).encode(), digest_size=8).digest(), "big")
                for i in range(len(part) - K + 1)]
        start = end + 1
    return out


def fingerprints(source, given=frozenset()):
    """The winnowed fingerprints of source, less the windows in `given` (the stub's)."""
    words = tokens(source)
    if words is None:
        return set()
    hashes = [h for h in _hashes(words) if h not in given]
    if len(hashes) <= WINDOW:
        return set(hashes)
    return {min(hashes[i:i + WINDOW]) for i in range(len(hashes) - WINDOW + 1)}


def windows(source):
    """Every window's hash: what the stub gives away."""
    words = tokens(source)
    return frozenset(_hashes(words)) if words else frozenset()


def read(path):
    """A regular file's text (at most MAX_BYTES), or None: no link is followed, at its name or in
    the folders above it (grader/paths.py)."""
    try:
        dirfd, name = paths.open_parent(path)
    except (OSError, paths.Refused):
        return None
    try:
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode):
            return None
        fd = paths.open_file(dirfd, name, st)
    except OSError:
        return None
    finally:
        os.close(dirfd)
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_BYTES + 1)
    return None if len(data) > MAX_BYTES else data.decode("utf-8", errors="replace")


def jaccard(a, b):
    return len(a & b) / len(a | b) if a or b else 0.0


def similar_pairs(folders, exercises, stubs, references, threshold=THRESHOLD):
    """Flagged pairs, most alike first: folders {student: folder of NN_*.py}; stubs and references
    {exercise id: source or None}."""
    pairs = []
    for ex in exercises:
        given = windows(stubs.get(ex.id) or "")
        reference = fingerprints(references.get(ex.id) or "", given)
        prints = {}
        for student, folder in folders.items():
            text = read(os.path.join(folder, ex.filename)) if folder is not None else None
            found = fingerprints(text, given) if text else set()
            if len(found) >= MIN_PRINTS:
                prints[student] = found
        for a, b in combinations(sorted(prints), 2):
            score = jaccard(prints[a], prints[b])
            if score >= threshold:
                pairs.append({"exercise": ex.id, "student_a": a, "student_b": b, "similarity": f"{score:.2f}",
                              "shared": len(prints[a] & prints[b]),
                              "a_like_reference": f"{jaccard(prints[a], reference):.2f}" if reference else "",
                              "b_like_reference": f"{jaccard(prints[b], reference):.2f}" if reference else ""})
    return sorted(pairs, key=lambda p: (-float(p["similarity"]), p["exercise"], p["student_a"], p["student_b"]))


COLUMNS = ["exercise", "student_a", "student_b", "similarity", "shared", "a_like_reference", "b_like_reference"]
