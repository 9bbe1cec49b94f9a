"""Text from a submission, made safe to show, and lists and files kept to a size (standard library only:
`python -S -m grader.formats fallback` runs without torch or numpy).

Whatever a submission writes (an exception's message, its printed output, a file name, a value) can
end up in a terminal, a CI log, a page or an XML file. There it must stay text: no control
characters, and nothing a CI runner reads as a command. GitHub Actions runs `::command::` at the
start of a line (after any whitespace, and a carriage return starts a line too) and the legacy
`##[command]` anywhere in a line.
"""
import re

MAX_FINDINGS = 20       # findings listed per exercise (watch, static scan, audit); the rest are counted

# a run of colons at a line's start, after any whitespace (every character Python splits lines at
# counts as a line break: more than the runner's \n and \r)
_AT_LINE_START = re.compile(r"(?:^|(?<=[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]))(\s*)(::+)")
_LEGACY = re.compile(r"##\[")


def inert(text):
    """`text` with every workflow command broken: colons at the start of a line (after any
    whitespace; the text's own start counts) are spaced, `::` becoming `: :`, and `##[` becomes
    `## [`, so no line of it starts a command, wherever the text is placed at a line's start.
    `x[:, ::2]` stays as it is. Applying it twice changes nothing more."""
    return _LEGACY.sub("## [", _AT_LINE_START.sub(lambda m: m.group(1) + " ".join(m.group(2)), text))


def clean(text, limit=2000):
    """A string from a submission, safe to show: no control characters (ANSI escapes, carriage
    returns, bells) but newlines and tabs, no workflow command, cut to `limit` with a visible marker."""
    text = "".join(c if c in "\n\t" or (c.isprintable() and c not in "\u2028\u2029") else "�"
                   for c in str(text)[:limit + 1])
    return inert(text if len(text) <= limit else text[:limit] + " [... cut]")


def one_line(text, limit=300):
    """clean(), for a place that holds one line (a test's name, a finding, a file name, a narration
    line): a newline shows as ⏎ and a tab as a space."""
    return clean(str(text).replace("\r\n", "\n").replace("\n", "⏎").replace("\t", " "), limit)


def capped(items, limit=MAX_FINDINGS):
    """The first `limit` items, then one line that counts the rest."""
    items = list(items)
    if len(items) <= limit:
        return items
    return items[:limit] + [f"and {len(items) - limit:,} more not listed"]


# -- reports of bounded size ------------------------------------------------------------------

MAX_REPORT_BYTES = 1 << 20      # a JSON, JUnit or Gradescope file
CUT_MARK = " [... cut: the report's size cap]"


def fit(data, render, limit=MAX_REPORT_BYTES, note=None):
    """render(data) in at most `limit` bytes (UTF-8). When it is over, every string in `data` longer
    than n characters is cut to n with CUT_MARK, n halving from 4096 until the file fits, and
    `note(data, n)` may record the cut in the data itself. The lists in `data` are bounded
    elsewhere (findings by MAX_FINDINGS, tests by the hidden tests), so cutting strings suffices."""
    out = render(data)
    n = 4096
    while len(out.encode() if isinstance(out, str) else out) > limit and n >= 32:
        smaller = _cut_strings(data, n)
        if note:
            note(smaller, n)
        out = render(smaller)
        n //= 2
    return out


def _cut_strings(value, n):
    if isinstance(value, str):
        return value if len(value) <= n else value[:n] + CUT_MARK
    if isinstance(value, dict):
        return {k: _cut_strings(v, n) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_cut_strings(v, n) for v in value]
    return value
