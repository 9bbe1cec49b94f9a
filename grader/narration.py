"""Checked shape narration: a learner's shape comments against the tensors' real shapes.

A line of the learner's function that assigns a tensor may carry a shape comment:

    scores = q @ k.transpose(-2, -1) * scale    # (B, H, L, S)
    x = x.view(B, L, H, d)                      # B, L, H, d_head
    probs = softmax(scores)                     # (..., L, S) after the mask

Two pieces, meant to be wired into a grading run by the sandbox:

1. `record_shapes(fn, args, kwargs, filename)` runs fn once under sys.settrace and records, per
   source line of `filename`, the shapes of the tensors that line assigned (local variables, and
   attributes of `self`, after the line ran) and of the tensors returned. It imports only the
   standard library and torch, so it can run inside the sandbox; its record is plain data.
2. `check_narration(source, record, known)` is pure: it reads the shape comments from the source,
   binds the symbols consistently within the call (from `known`, the sizes of the call's inputs
   under the contract's names, then at first use), compares, and `narration_line(result)` renders
   "narration: 9 of 11 tensor lines annotated, 8 right; line 14 says (B, H, L, d_head), the
   tensor is (B, L, H, d_head)".

A shape comment is a parenthesised list of dimensions, `(B, H, L, d_head)`, optionally followed by
free text, or a bare list of two or more, `B, L, D`. A dimension is a symbol, a whole number, a
product such as `H*d_head` or `D//H`, or `...` (any number of dimensions; with several, the
runs between them are placed left to right at their first fit). Names the learner's code gives
a whole number (`B, H, L, d = x.shape`, `d = D // H`) mean the number they held. Narration earns
no points in the grade; drills and interviews score it.

In a grading run (`python -m grader NN --narrate`, as watch, drill and interview call it): after an
exercise's tests, session.py runs the probe `narrate` below in that exercise's sandbox, with the
watch off and the audit hook on (which lets this probe's tracer through), and checks its record
against the learner's comments here, in the grader; the result is the exercise's "narration" in
the JSON and one line in the report. The record comes from the submission's process, so the
checker trusts none of it: it must be plain, bounded data (checked_record), the sizes it is
checked against are the grader's own (call_sizes), the matching is polynomial with a hard cap on
its steps, and the line is made printable and cut. Any failure there means no narration, never a
lost point.

One module on purpose (about 800 lines): the probe travels to the sandbox as source together with
the functions of its own module that it uses (`host.probe_source`), so the tracer and the probe
live here beside the checker that reads their record.
"""
import io
import sys
import tokenize

# -- 1. the tracer (standard library and torch only: it runs inside the sandbox) ----------------
_SKIP_FRAMES = {"<lambda>", "<genexpr>", "<listcomp>", "<dictcomp>", "<setcomp>", "<module>"}
_MOST = 1 << 40                  # the largest whole number recorded (the checker's MAX_SIZE)


def record_shapes(fn, args=(), kwargs=None, filename=None):
    """Calls fn(*args, **kwargs) once, tracing the frames whose code lives in `filename`.

    Returns plain data:
        {"lines": {lineno: [[name, [dims]], ...]},   tensors a line assigned, on its last run
         "sizes": {lineno: [[name, int], ...]},      whole numbers a line assigned (B, L, D = x.shape)
         "returns": {lineno: [dims]},                 a tensor returned by a `return` on that line
         "order": [lineno, ...],                      lines in order of their first record
         "executed": [lineno, ...],                   every line of `filename` that ran
         "error": None or the exception's class name,
         "error_line": the line the exception came from (the deepest traced frame), or None}
    A line that runs several times (a loop, a helper called twice) keeps its last run, so every
    line of a loop's body is seen in the same, last, iteration: 14's last query tile and its last
    key tile differ in size (Bq != Bk), where the first two would not.
    Line numbers are those the interpreter reports (a continuation line of a statement spanning
    several lines may appear); check_narration maps them to statements. The call's result is not
    returned: narration is recorded on a call of its own. The grader trusts none of this record
    (it is made in the submission's process): check_narration checks it first.
    """
    import torch
    tensor = torch.Tensor

    def shape_of(value):
        """The shape of a torch tensor or a NumPy array (told by its type, without importing NumPy)."""
        if isinstance(value, tensor):
            return tuple(value.shape)
        kind = type(value)
        if kind.__name__ == "ndarray" and kind.__module__ == "numpy":
            return tuple(value.shape)
        return None
    kwargs = kwargs or {}
    if filename is None:
        filename = fn.__code__.co_filename if hasattr(fn, "__code__") else None
    lines, sizes, returns, order, executed = {}, {}, {}, [], set()
    crash = {"line": None}

    def snapshot(frame):
        snap = {}
        for name, value in frame.f_locals.items():
            if type(value) is int:
                if -_MOST <= value <= _MOST:            # a size, not a sentinel such as -2**63
                    snap[name] = ("int", value)
                continue
            shape = shape_of(value)
            if shape is not None:
                snap[name] = (id(value), shape)
            if name == "self":
                attrs = getattr(value, "__dict__", None)
                if isinstance(attrs, dict):
                    for attr, v in list(attrs.items()):
                        shape = shape_of(v)
                        if shape is not None:
                            snap[f"self.{attr}"] = (id(v), shape)
        return snap

    def first_seen(lineno):
        if lineno not in lines and lineno not in returns and lineno not in sizes:
            order.append(lineno)

    def note(lineno, before, after):
        if lineno is None:
            return
        changed = [[name, list(shape)] for name, (ident, shape) in after.items()
                   if ident != "int" and before.get(name, (None,))[0] != ident]
        numbers = [[name, value] for name, (kind, value) in after.items()
                   if kind == "int" and before.get(name) != (kind, value)]
        if changed:
            first_seen(lineno)
            lines[lineno] = changed
        if numbers:
            sizes[lineno] = numbers

    def local_tracer(state):
        def trace(frame, event, arg):
            if event == "line" or event == "return":
                now = snapshot(frame)
                note(state["line"], state["snap"], now)
                state["snap"] = now
                state["line"] = frame.f_lineno
                if event == "line":
                    executed.add(frame.f_lineno)
                    crash["line"] = None            # running on: any exception so far was handled
                elif shape_of(arg) is not None:
                    first_seen(frame.f_lineno)
                    returns[frame.f_lineno] = list(shape_of(arg))
            elif event == "exception" and crash["line"] is None:
                crash["line"] = frame.f_lineno      # the deepest traced frame sees it first
            return trace
        return trace

    def global_tracer(frame, event, arg):
        if event != "call" or frame.f_code.co_filename != filename or frame.f_code.co_name in _SKIP_FRAMES:
            return None
        return local_tracer({"line": None, "snap": snapshot(frame)})

    previous = sys.gettrace()
    error = None
    sys.settrace(global_tracer)
    try:
        fn(*args, **kwargs)
    except Exception as e:          # the grade reports the failure; narration keeps what it saw
        error = type(e).__name__
    finally:
        sys.settrace(previous)
    return {"lines": lines, "sizes": sizes, "returns": returns, "order": order, "executed": sorted(executed),
            "error": error, "error_line": crash["line"] if error else None}


def call_sizes(exercise_id):
    """The sizes of the representative call's inputs, under the contract's names: all distinct, so
    a swapped pair cannot pass. The grader takes them from here, never from the sandbox."""
    B, H, L, S, dk, dv, D = 2, 3, 5, 7, 11, 13, 33
    ex = str(exercise_id).zfill(2)
    sizes = {
        "01": dict(B=B, L=L, S=S, D=D),
        "02": dict(B=B, L=L, D=D, H=H, d_head=D // H),
        "04": dict(B=B, H=H, L=L, S=S),
        "05": dict(B=B, H=H, L=L, S=S),
        "07": dict(B=B, H=H, L=L, d_head=dk, D=H * dk),
        "08": dict(B=B, L=L, D=D, d_out=17),
        "10": dict(B=B, L=L, S=S, D=D, H=H, d_head=D // H),
        "11": dict(B=4, H_q=6, H_kv=3, n_rep=2, L=L, S=S, d_k=dk, d_v=dv),
        "12": dict(B=B, H=H, L=L, d=16, D=16),
        "13": dict(B=B, H=H, T=5, S=2 + 5, d_k=dk, max_len=17),
        # One tile size, 16: the last query tile has 44 - 32 = 12 rows (Bq), the last key tile
        # 56 - 48 = 8 columns (Bk), and the tracer keeps each line's last run.
        "14": dict(B=B, H=H, L=44, S=56, d_k=dk, d_v=dv),
    }.get(ex, dict(B=B, H=H, L=L, S=S, d_k=dk, d_v=dv))
    return dict(sizes)


def representative(exercise_id, module):
    """One call of an exercise whose sizes are all distinct, so a swapped pair cannot pass:
    (fn, args, kwargs, known) for record_shapes and check_narration. Any setup (13's cache, filled
    with two tokens) runs here, untraced. `module` is the learner's module; standard library and
    torch only (15's NumPy arrays come from torch)."""
    import torch
    g = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g)

    ex = str(exercise_id).zfill(2)
    known = call_sizes(ex)
    B, H, L, S, dk, dv, D = 2, 3, 5, 7, 11, 13, 33
    causal = torch.ones(L, S, dtype=torch.bool).triu(S - L + 1)
    if ex == "01":
        w = [randn(D, D) for _ in range(3)]
        return module.project_qkv, (randn(B, L, D), *w), {"context": randn(B, S, D)}, known
    if ex == "02":
        return module.split_heads, (randn(B, L, D), H), {}, known
    if ex == "03":
        return module.attention_scores, (randn(B, H, L, dk), randn(B, H, S, dk)), {}, known
    if ex == "04":
        def call():
            mask = module.causal_mask(L, S) | module.padding_mask([S, 4], S)
            return module.apply_mask(randn(B, H, L, S), mask)
        return call, (), {}, known
    if ex == "05":
        return module.softmax, (randn(B, H, L, S),), {}, known
    if ex == "06":
        return module.weight_values, (randn(B, H, L, S).softmax(-1), randn(B, H, S, dv)), {}, known
    if ex == "07":
        return module.merge_heads, (randn(B, H, L, dk),), {}, known
    if ex == "08":
        return module.output_projection, (randn(B, L, D), randn(17, D), randn(17)), {}, known
    if ex == "09":
        return module.scaled_dot_product_attention, (randn(B, H, L, dk), randn(B, H, S, dk), randn(B, H, S, dv),
                                                     causal), {}, known
    if ex == "10":
        torch.manual_seed(0)
        m = module.MultiHeadAttention(D, H).eval()
        pad = torch.zeros(B, S, dtype=torch.bool)
        pad[1, 4:] = True
        return m, (randn(B, L, D), randn(B, S, D)), {"key_padding_mask": pad, "is_causal": True,
                                                   "need_weights": True}, known
    if ex == "11":
        Bg, Hq, Hkv = known["B"], known["H_q"], known["H_kv"]
        return module.grouped_query_attention, (randn(Bg, Hq, L, dk), randn(Bg, Hkv, S, dk), randn(Bg, Hkv, S, dv),
                                                causal), {}, known
    if ex == "12":
        def call():
            module.sinusoidal_encoding(L, 16)
            return module.apply_rope(randn(B, H, L, 16))
        return call, (), {}, known
    if ex == "13":
        cache = module.KVCache(B, H, known["max_len"], dk)
        cache.update(randn(B, H, 2, dk), randn(B, H, 2, dk))
        T = known["T"]
        return module.cached_attention, (randn(B, H, T, dk), randn(B, H, T, dk), randn(B, H, T, dk), cache), {}, \
            known
    if ex == "14":
        Lf, Sf = known["L"], known["S"]
        return module.flash_attention, (randn(B, H, Lf, dk), randn(B, H, Sf, dk), randn(B, H, Sf, dv)), \
            {"causal": True, "block_size": 16}, known
    if ex == "15":
        q, k, v = randn(B, H, L, dk).double().numpy(), randn(B, H, S, dk).double().numpy(), \
            randn(B, H, S, dv).double().numpy()
        dout = randn(B, H, L, dv).double().numpy()

        def call():
            out, cache = module.attention_forward(q, k, v, causal=True)
            return module.attention_backward(dout, cache)
        return call, (), {}, known
    raise ValueError(f"no representative call for exercise {exercise_id!r}")


def narrate(module, exercise_id, filename):
    """Probe: runs in the sandbox, on the learner's module, as `narrate` in a call of its own with
    the watch off (the only call whose tracer the sandbox lets through); returns the record."""
    fn, args, kwargs, _ = representative(exercise_id, module)
    return record_shapes(fn, args, kwargs, filename)


# -- 2. the checker (pure) -----------------------------------------------------------------------
# The contract's names; any other identifier is bound at its first use too.
CONTRACT_SYMBOLS = ("B", "H", "H_q", "H_kv", "L", "S", "T", "D", "d_model", "d_head", "head_dim", "d_k", "d_v",
                    "d", "d_in", "d_out", "n_rep", "max_len", "Bq", "Bk", "n")
ALIASES = {"d_model": "D", "head_dim": "d_head", "num_heads": "H"}
_OPS = ("*", "//", "·", "×")

# Bounds on what the sandbox hands back and on what a comment may ask: the record is made in the
# submission's process, and the comments are the submission's text, so neither sets the work.
MAX_RECORD_LINES = 5000          # entries in each of the record's tables
MAX_NAMES_PER_LINE = 64          # tensors (or whole numbers) one line may assign
MAX_RANK = 32
MAX_SIZE = _MOST
MAX_LINENO = 1_000_000
MAX_NAME = 120
MAX_COMMENT = 300                # characters of a comment read for a shape
MAX_DIMS = 32                    # dimensions in one shape comment
MAX_FACTORS = 8                  # factors in one product (H*d_head)
MAX_COMMENTS = 2000              # shape comments checked in one file
MAX_STEPS = 200_000              # comparisons in one check: a real file needs a few hundred
MAX_LINE_CHARS = 400             # the printed narration line
MAX_WRONG_KEPT = 50


class BadRecord(ValueError):
    """The sandbox's record is not the plain data record_shapes makes: no narration, no crash."""


def _int(value, low, high, what):
    if type(value) is not int or not low <= value <= high:
        raise BadRecord(f"{what} is not a whole number in [{low}, {high}]")
    return value


def _name(value):
    if type(value) is not str or not 0 < len(value) <= MAX_NAME or \
            not all(part.isidentifier() for part in value.split(".")):
        raise BadRecord("a name is not a short identifier")
    return value


def _table(value, what):
    if type(value) is not dict or len(value) > MAX_RECORD_LINES:
        raise BadRecord(f"{what} is not a table of at most {MAX_RECORD_LINES} lines")
    return value.items()


def _shape(value):
    if type(value) not in (list, tuple) or len(value) > MAX_RANK:
        raise BadRecord(f"a shape is not a list of at most {MAX_RANK} sizes")
    return [_int(s, 0, MAX_SIZE, "a size") for s in value]


def _pairs(value, item):
    if type(value) not in (list, tuple) or len(value) > MAX_NAMES_PER_LINE:
        raise BadRecord(f"a line's entry is not a list of at most {MAX_NAMES_PER_LINE} names")
    out = []
    for pair in value:
        if type(pair) not in (list, tuple) or len(pair) != 2:
            raise BadRecord("an entry is not a [name, value] pair")
        out.append([_name(pair[0]), item(pair[1])])
    return out


def checked_record(record):
    """A fresh copy of the record, made only of bounded whole numbers and short identifiers;
    BadRecord if it is anything else (a shape of bytes, strings, floats, a flood of lines)."""
    if type(record) is not dict:
        raise BadRecord("the record is not a table")
    unknown = set(record) - {"lines", "sizes", "returns", "order", "executed", "error", "error_line"}
    if unknown:
        raise BadRecord("the record has fields record_shapes does not make")

    def line(v):
        return _int(v, 1, MAX_LINENO, "a line number")

    def numbers(v, what):
        if type(v) not in (list, tuple) or len(v) > MAX_RECORD_LINES:
            raise BadRecord(f"{what} is not a list of at most {MAX_RECORD_LINES} lines")
        return [line(x) for x in v]
    error = record.get("error")
    if error is not None:
        _name(error)
    error_line = record.get("error_line")
    return {
        "lines": {line(k): _pairs(v, _shape) for k, v in _table(record.get("lines", {}), "lines")},
        "sizes": {line(k): _pairs(v, lambda n: _int(n, -MAX_SIZE, MAX_SIZE, "a number"))
                  for k, v in _table(record.get("sizes", {}), "sizes")},
        "returns": {line(k): _shape(v) for k, v in _table(record.get("returns", {}), "returns")},
        "order": numbers(record.get("order", []), "order"),
        "executed": numbers(record.get("executed", []), "executed"),
        "error": error,
        "error_line": None if error_line is None else line(error_line),
    }


class _Steps:
    """Counts the checker's comparisons; past MAX_STEPS the check gives up (BadRecord)."""

    def __init__(self, most=MAX_STEPS):
        self.n, self.most = 0, most

    def __call__(self, k=1):
        self.n += k
        if self.n > self.most:
            raise BadRecord(f"the check took more than {self.most} steps")


def _factors(piece):
    """['H', '*', 'd_head'] for 'H * d_head'; None unless it is a product of names and numbers."""
    out, i, n = [], 0, len(piece)
    while i < n:
        if piece[i] == " ":
            i += 1
            continue
        want_factor = len(out) % 2 == 0
        if want_factor:
            j = i
            if piece[i].isascii() and (piece[i].isalpha() or piece[i] == "_"):
                while j < n and piece[j].isascii() and (piece[j].isalnum() or piece[j] == "_"):
                    j += 1
            elif piece[i].isascii() and piece[i].isdigit():
                while j < n and piece[j].isascii() and piece[j].isdigit():
                    j += 1
                if j - i > 12:
                    return None
            else:
                return None
            out.append(piece[i:j])
        else:
            op = next((o for o in _OPS if piece.startswith(o, i)), None)
            if op is None:
                return None
            out.append("//" if op == "//" else "*")
            j = i + len(op)
        i = j
    if not out or len(out) % 2 == 0 or len(out) > 2 * MAX_FACTORS - 1:
        return None
    return out


def _dims(text):
    """The dimensions of a comma-separated list ('B, H, L*d, ...'), or None if it is not one.
    One pass over the text: no pattern that could backtrack over the learner's words."""
    pieces = [p.strip().replace("\t", " ") for p in text.split(",", MAX_DIMS + 1)]
    if pieces and pieces[-1] == "" and len(pieces) > 1:
        pieces.pop()                                    # "(L,)": a trailing comma
    if not pieces or len(pieces) > MAX_DIMS:
        return None
    dims = []
    for p in pieces:
        if p in ("...", "…"):
            dims.append("...")
            continue
        f = _factors(p)
        if f is None:
            return None
        dims.append("".join(f))
    return dims


def parse_shape(comment):
    """The dimensions a comment states, as a list of strings, or None if it is not a shape."""
    text = comment.lstrip("#").strip()[:MAX_COMMENT]
    for arrow in ("->", "→"):                   # "(L, d) @ (d, S) -> (L, S)": the result is the claim
        if arrow in text:
            text = text.rsplit(arrow, 1)[1].strip()
    if text.startswith("("):
        end = text.find(")")
        if end < 0 or "(" in text[1:end]:
            return None
        inner = text[1:end].strip()
        if not inner:
            return []                                   # () : a scalar tensor
        dims = _dims(inner)
        if dims is None:
            return None
        if len(dims) == 1 and not inner.endswith(",") and not _looks_like_dim(dims[0]):
            return None                                 # "(optional)" is prose, "(L,)" or "(S)" a shape
        return dims
    text = text.rstrip(".;:")
    if "," in text:
        dims = _dims(text)
        if dims is not None and len(dims) >= 2:
            return dims
    return None


def _is_product(dim):
    return "*" in dim or "//" in dim


def _looks_like_dim(dim):
    return dim == "..." or dim.isdigit() or dim in CONTRACT_SYMBOLS or dim in ALIASES or _is_product(dim)


def _statements(source):
    """{line: first line of the simple statement covering it}, the assignment statements, and
    {line: names} of those that assign plain names (`B, H, L, d = x.shape`, `d = D // H`)."""
    import ast
    tree = ast.parse(source)
    cover, assigns, named = {}, set(), {}
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                                                ast.If, ast.For, ast.While, ast.With, ast.Try,
                                                                ast.AsyncFor, ast.AsyncWith)):
            for line in range(node.lineno, (node.end_lineno or node.lineno) + 1):
                cover.setdefault(line, node.lineno)
                if cover[line] < node.lineno:          # the innermost (latest-starting) statement wins
                    cover[line] = node.lineno
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                assigns.add(node.lineno)
            if isinstance(node, ast.Assign):
                names = [n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)
                         and isinstance(n.ctx, ast.Store)]
                if names:
                    named[node.lineno] = names
        elif isinstance(node, (ast.For, ast.With, ast.AsyncFor, ast.AsyncWith)):
            cover.setdefault(node.lineno, node.lineno)   # `for i in ...:  # comment` is its header line
    return cover, assigns, named


def shape_comments(source):
    """{statement line: (comment line, comment text, dims)} for every shape comment in the source."""
    cover, _, _ = _statements(source)
    found = {}
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return found
    code_lines = {t.start[0] for t in tokens if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE,
                                                               tokenize.INDENT, tokenize.DEDENT,
                                                               tokenize.ENDMARKER)}
    for t in tokens:
        if t.type != tokenize.COMMENT or t.start[0] not in code_lines:
            continue                                     # only comments that trail code count
        dims = parse_shape(t.string)
        if dims is None:
            continue
        stmt = cover.get(t.start[0], t.start[0])
        found.setdefault(stmt, (t.start[0], dims))
        if len(found) >= MAX_COMMENTS:
            break
    return found


def known_sizes(**sizes):
    """Bindings for the contract's names from the call's sizes, aliases filled in:
    known_sizes(B=2, H=3, L=5, S=7, d_k=11, d_v=13, D=33)."""
    out = {}
    for name, value in sizes.items():
        if value is None:
            continue
        out[ALIASES.get(name, name)] = int(value)
    if "D" in out and "H" in out and "d_head" not in out and out["D"] % out["H"] == 0:
        out["d_head"] = out["D"] // out["H"]
    return out


def _evaluate(dim, binding, more=None):
    """A product such as H*d_head, or None if a symbol in it is unbound in `binding` (and `more`);
    at most MAX_FACTORS factors of at most MAX_SIZE each, so the number stays small."""
    more = more or {}
    value, op, factor = None, "*", ""
    for part in _factors(dim) or ():
        if part in ("*", "//"):
            op = part
            continue
        factor = part
        name = ALIASES.get(part, part)
        v = int(part) if part.isdigit() else binding.get(name, more.get(name))
        if v is None:
            return None
        value = v if value is None else (value * v if op == "*" else (value // v if v else None))
        if value is None:
            return None
    return value if factor else None


def _match(dims, shape, binding, steps=None):
    """(ok, new bindings, why) for dims against one shape.

    Without `...` (or with one) every dimension has one place. With several, the runs of
    dimensions between them are placed left to right, each at the first place it fits: a
    polynomial search (at most len(dims) * len(shape) comparisons), never an enumeration of the
    ways the `...` could split the shape."""
    steps = steps or _Steps()
    shape = list(shape)
    fixed = [d for d in dims if d != "..."]
    if "..." not in dims and len(dims) != len(shape):
        return False, {}, f"has {len(shape)} dimensions, the comment {len(dims)}"
    if len(fixed) > len(shape):
        return False, {}, f"has {len(shape)} dimensions, fewer than the comment's {len(fixed)}"
    new, products = {}, []

    def fits(run, at):
        """Tentative bindings if `run` fits the shape from index `at`, else None."""
        local, later = {}, []
        for i, d in enumerate(run):
            steps()
            size = shape[at + i]
            if d.isdigit():
                if int(d) != size:
                    return None
            elif _is_product(d):
                later.append((d, size))
            else:
                name = ALIASES.get(d, d)
                bound = binding.get(name, new.get(name, local.get(name)))
                if bound is None:
                    local[name] = size
                elif bound != size:
                    return None
        return local, later

    def take(run, at):
        got = fits(run, at)
        if got is None:
            return False
        new.update(got[0])
        products.extend(got[1])
        return True

    runs, run = [], []
    for d in dims:
        if d == "...":
            runs.append(run)
            run = []
        else:
            run.append(d)
    runs.append(run)
    ok = take(runs[0], 0)
    if ok and len(runs) > 1:
        low, high = len(runs[0]), len(shape) - len(runs[-1])
        ok = take(runs[-1], high)
        for run in runs[1:-1]:
            if not ok or not run:
                continue
            ok = False
            for at in range(low, high - len(run) + 1):
                if fits(run, at) is not None:
                    ok = take(run, at)
                    low = at + len(run)
                    break
    if ok:
        for d, size in products:
            steps()
            if _evaluate(d, binding, new) != size:
                ok = False
                break
    if ok:
        return True, new, None
    plain = {ALIASES.get(d, d) for d in fixed if not _is_product(d) and not d.isdigit()}
    for d in fixed:
        if _is_product(d):
            for p in _factors(d)[::2]:
                if not p.isdigit() and ALIASES.get(p, p) not in binding and ALIASES.get(p, p) not in plain:
                    return False, {}, f"{d} uses a symbol not bound yet"
    return False, {}, None


def _render(dims):
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 and dims[0] != "..." else "") + ")"


def _name_shape(shape, dims, binding, origin=None, steps=None):
    """The tensor's real shape in symbols where a bound symbol has that size: the comment's own
    first, then the contract's, then those other comments bound, then the learner's variables."""
    (steps or _Steps())(len(binding) + len(dims))
    by_value = {}
    for d in dims:
        name = ALIASES.get(d, d)
        if not d.isdigit() and d != "..." and name in binding:
            by_value.setdefault(binding[name], d)
    def rank(name):
        where = (origin or {}).get(name, "")
        return 0 if where == "from the inputs" else 2 if where.startswith("from line") else 1
    for name, value in sorted(binding.items(), key=lambda kv: rank(kv[0])):
        by_value.setdefault(value, name)
    return "(" + ", ".join(by_value.get(s, str(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def check_narration(source, record, known=None, first_line=1, last_line=None):
    """Compares the shape comments of `source` with a record from record_shapes.

    `known`: the sizes of the call's inputs under the contract's names (see known_sizes); the
    representative call gives every one a distinct size, so a swapped pair cannot pass. Names the
    learner's code gives a whole number (`B, H, L, d = x.shape`, `d = D // H`) mean the number
    they held, unless `known` names them already. Lines outside [first_line, last_line] are ignored (to check one
    function of a file). The record is checked first (checked_record): BadRecord if it is not
    plain, bounded data; the work is bounded too.
    Returns a dict: comments, tensor_lines, annotated, right, wrong (list of {line, says, actual,
    why}, the first MAX_WRONG_KEPT), crashed (the annotated line the call raised on), not_tensor
    (annotated lines that ran but assigned no tensor), not_run, error, bindings, and `line`, the
    report's narration line."""
    record = checked_record(record)
    steps = _Steps()
    cover, assigns, named = _statements(source)
    comments = shape_comments(source)
    last_line = last_line or 10 ** 9

    def inside(line):
        return first_line <= line <= last_line

    def stmt(raw):
        return cover.get(raw, raw)

    assigned, returned, order = {}, {}, {}
    for raw in record["order"]:
        if inside(stmt(raw)):
            order.setdefault(stmt(raw), None)            # a dict keeps the order, and looks up in O(1)
    for raw, items in record["lines"].items():
        if inside(stmt(raw)):
            assigned.setdefault(stmt(raw), []).extend(tuple(s) for _, s in items)
    for raw, shape in record["returns"].items():
        if inside(stmt(raw)):
            returned.setdefault(stmt(raw), tuple(shape))
    executed = {stmt(x) for x in record["executed"]}
    crash = stmt(record["error_line"]) if record["error_line"] is not None else None

    # A tensor line: an assignment that stored a tensor (a return counts once annotated).
    tensor_lines = {line for line in assigned if line in assigns or line in comments}
    binding = {ALIASES.get(k, k): int(v) for k, v in (known or {}).items()}
    origin = {name: "from the inputs" for name in binding}
    # The learner's own names for sizes, from the lines that assign them, for the names the
    # comments use; a name that held two different numbers on two such lines is left to bind at
    # its first use.
    used = {ALIASES.get(f, f) for _, dims in comments.values() for d in dims for f in (_factors(d) or ())[::2]}
    theirs = {}
    for raw, items in record["sizes"].items():
        line = stmt(raw)
        if line in named and inside(line):
            for name, value in items:
                if name in named[line]:
                    theirs.setdefault(ALIASES.get(name, name), {})[value] = line
    for name, values in theirs.items():
        if name in used and name not in binding and len(values) == 1:
            (value, line), = values.items()
            binding[name] = value
            origin[name] = f"from line {line}"
    annotated, right, wrong, not_tensor, not_run, crashed = 0, 0, [], [], [], []
    checked = [line for line in order if line in comments] + \
        sorted(line for line in comments if line not in order and inside(line))
    for line in checked:
        comment_line, dims = comments[line]
        shapes = assigned.get(line) or ([returned[line]] if line in returned else [])
        if not shapes:
            if line == crash:
                crashed.append(comment_line)
            else:
                (not_tensor if line in executed else not_run).append(comment_line)
            continue
        annotated += 1
        if line in returned:
            tensor_lines.add(line)
        verdicts = []
        for s in shapes:
            verdicts.append(_match(dims, s, binding, steps))
            if verdicts[-1][0]:
                break
        ok = verdicts[-1] if verdicts[-1][0] else None
        if ok:
            right += 1
            for name, value in ok[1].items():
                binding[name] = value
                origin[name] = f"on line {comment_line}"
            continue
        actual = shapes[0]
        why = verdicts[0][2]
        if why is None and "..." not in dims:
            # A symbol bound earlier in the call, from a comment, and used here for another size.
            for d, size in zip(dims, actual):
                name = ALIASES.get(d, d)
                if name in binding and binding[name] != size and origin[name] != "from the inputs":
                    why = f"{d} was {binding[name]} {origin[name]}, here it is {size}"
                    break
        if len(wrong) >= MAX_WRONG_KEPT:
            wrong.append(None)                          # counted, not kept
            continue
        wrong.append({"line": comment_line, "says": _render(dims), "sizes": list(actual), "why": why,
                      "actual": _name_shape(actual, dims, binding, origin, steps)})
    result = {"comments": len([line for line in comments if inside(line)]), "tensor_lines": len(tensor_lines),
              "annotated": annotated, "right": right, "wrong": wrong[:MAX_WRONG_KEPT], "wrong_count": len(wrong),
              "crashed": crashed, "not_tensor": sorted(not_tensor), "not_run": sorted(not_run),
              "error": record["error"], "error_line": crash, "bindings": dict(list(binding.items())[:64])}
    result["line"] = narration_line(result)
    return result


def printable(text, limit=MAX_LINE_CHARS):
    """One line, safe on any terminal or log: no control character (ANSI escapes, carriage
    returns, newlines), no invisible or direction-changing mark; cut to `limit`."""
    text = "".join(c if c.isprintable() and c.isascii() or c in "…·×" else "?" for c in str(text)[:limit + 1])
    return text if len(text) <= limit else text[:limit - 6] + " [cut]"


def narration_line(result, most=3):
    """narration: 9 of 11 tensor lines annotated, 8 right; line 14 says (B, H, L, d_head), the tensor
    is (B, L, H, d_head)"""
    text = f"narration: {result['annotated']} of {result['tensor_lines']} tensor lines annotated, {result['right']} right"
    notes = []
    wrong_count = result.get("wrong_count", len(result["wrong"]))
    for w in result["wrong"][:most]:
        note = f"line {w['line']} says {w['says']}, the tensor is {w['actual']}"
        if w.get("why"):
            note += f" ({w['why']})"
        notes.append(note)
    if wrong_count > most:
        notes.append(f"{wrong_count - most} more wrong")
    if result.get("crashed"):
        notes.append(f"line {result['crashed'][0]} raised {result.get('error') or 'an exception'} before its "
                     f"tensor was made, so its shape was not seen")
    elif result.get("error") and result.get("not_run"):
        where = f" at line {result['error_line']}" if result.get("error_line") else ""
        notes.append(f"the call raised {result['error']}{where}; {len(result['not_run'])} annotated "
                     f"line{'s' * (len(result['not_run']) > 1)} did not run")
    if result["not_tensor"]:
        lines = ", ".join(map(str, result["not_tensor"][:5])) + (", ..." if len(result["not_tensor"]) > 5 else "")
        notes.append(f"line{'s' * (len(result['not_tensor']) > 1)} {lines}: a shape comment where no tensor is "
                     f"assigned")
    return printable(text + ("; " + "; ".join(notes) if notes else ""))


def score(result):
    """(coverage, accuracy) in [0, 1]: annotated / tensor lines, right / annotated."""
    coverage = result["annotated"] / result["tensor_lines"] if result["tensor_lines"] else 0.0
    accuracy = result["right"] / result["annotated"] if result["annotated"] else 0.0
    return coverage, accuracy
