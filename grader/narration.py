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
product such as `H*d_head` or `D//H`, or `...` (any number of leading dimensions, once).
Narration earns no points in the grade; drills and interviews score it.

In a grading run (`python -m grader NN --narrate`, as watch, drill and interview call it): after an
exercise's tests, session.py runs the probe `narrate` below in that exercise's sandbox, with the
watch off and the audit hook on (which lets this probe's tracer through), and checks its record
against the learner's comments here, in the grader; the result is the exercise's "narration" in
the JSON and one line in the report. Any failure there means no narration, never a lost point.

One module on purpose (about 500 lines): the probe travels to the sandbox as source together with
the functions of its own module that it uses (`host.probe_source`), so the tracer and the probe
live here beside the checker that reads their record.
"""
import io
import re
import sys
import tokenize

# -- 1. the tracer (standard library and torch only: it runs inside the sandbox) ----------------
_SKIP_FRAMES = {"<lambda>", "<genexpr>", "<listcomp>", "<dictcomp>", "<setcomp>", "<module>"}


def record_shapes(fn, args=(), kwargs=None, filename=None):
    """Calls fn(*args, **kwargs) once, tracing the frames whose code lives in `filename`.

    Returns plain data:
        {"lines": {lineno: [[name, [dims]], ...]},   tensors a line assigned, its first run only
         "returns": {lineno: [dims]},                 a tensor returned by a `return` on that line
         "order": [lineno, ...],                      lines in order of their first record
         "executed": [lineno, ...],                   every line of `filename` that ran
         "error": None or the exception's class name}
    Line numbers are those the interpreter reports (a continuation line of a statement spanning
    several lines may appear); check_narration maps them to statements. The call's result is not
    returned: narration is recorded on a call of its own.
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
    lines, returns, order, executed = {}, {}, [], set()

    def snapshot(frame):
        snap = {}
        for name, value in frame.f_locals.items():
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

    def note(lineno, before, after):
        changed = [[name, list(shape)] for name, (ident, shape) in after.items()
                   if before.get(name, (None,))[0] != ident]
        if changed and lineno is not None and lineno not in lines:
            lines[lineno] = changed
            order.append(lineno)

    def local_tracer(state):
        def trace(frame, event, arg):
            if event == "line" or event == "return":
                now = snapshot(frame)
                note(state["line"], state["snap"], now)
                state["snap"] = now
                state["line"] = frame.f_lineno
                if event == "line":
                    executed.add(frame.f_lineno)
                elif shape_of(arg) is not None and frame.f_lineno not in returns:
                    returns[frame.f_lineno] = list(shape_of(arg))
                    if frame.f_lineno not in order:
                        order.append(frame.f_lineno)
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
    return {"lines": lines, "returns": returns, "order": order, "executed": sorted(executed), "error": error}


def representative(exercise_id, module):
    """One call of an exercise whose sizes are all distinct, so a swapped pair cannot pass:
    (fn, args, kwargs, known) for record_shapes and check_narration. Any setup (13's cache, filled
    with two tokens) runs here, untraced. `module` is the learner's module; standard library and
    torch only (15's NumPy arrays come from torch)."""
    import torch
    g = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g)

    B, H, L, S, dk, dv, D = 2, 3, 5, 7, 11, 13, 33
    causal = torch.ones(L, S, dtype=torch.bool).triu(S - L + 1)
    ex = str(exercise_id).zfill(2)
    known = dict(B=B, H=H, L=L, S=S, d_k=dk, d_v=dv)
    if ex == "01":
        w = [randn(D, D) for _ in range(3)]
        return module.project_qkv, (randn(B, L, D), *w), {"context": randn(B, S, D)}, dict(B=B, L=L, S=S, D=D)
    if ex == "02":
        return module.split_heads, (randn(B, L, D), H), {}, dict(B=B, L=L, D=D, H=H, d_head=D // H)
    if ex == "03":
        return module.attention_scores, (randn(B, H, L, dk), randn(B, H, S, dk)), {}, known
    if ex == "04":
        def call():
            mask = module.causal_mask(L, S) | module.padding_mask([S, 4], S)
            return module.apply_mask(randn(B, H, L, S), mask)
        return call, (), {}, dict(B=B, H=H, L=L, S=S)
    if ex == "05":
        return module.softmax, (randn(B, H, L, S),), {}, dict(B=B, H=H, L=L, S=S)
    if ex == "06":
        return module.weight_values, (randn(B, H, L, S).softmax(-1), randn(B, H, S, dv)), {}, known
    if ex == "07":
        return module.merge_heads, (randn(B, H, L, dk),), {}, dict(B=B, H=H, L=L, d_head=dk, D=H * dk)
    if ex == "08":
        return module.output_projection, (randn(B, L, D), randn(17, D), randn(17)), {}, \
            dict(B=B, L=L, D=D, d_out=17)
    if ex == "09":
        return module.scaled_dot_product_attention, (randn(B, H, L, dk), randn(B, H, S, dk), randn(B, H, S, dv),
                                                     causal), {}, known
    if ex == "10":
        torch.manual_seed(0)
        m = module.MultiHeadAttention(D, H).eval()
        pad = torch.zeros(B, S, dtype=torch.bool)
        pad[1, 4:] = True
        return m, (randn(B, L, D), randn(B, S, D)), {"key_padding_mask": pad, "is_causal": True,
                                                   "need_weights": True}, \
            dict(B=B, L=L, S=S, D=D, H=H, d_head=D // H)
    if ex == "11":
        Bg, Hq, Hkv = 4, 6, 3
        return module.grouped_query_attention, (randn(Bg, Hq, L, dk), randn(Bg, Hkv, S, dk), randn(Bg, Hkv, S, dv),
                                                causal), {}, \
            dict(B=Bg, H_q=Hq, H_kv=Hkv, n_rep=Hq // Hkv, L=L, S=S, d_k=dk, d_v=dv)
    if ex == "12":
        def call():
            module.sinusoidal_encoding(L, 16)
            return module.apply_rope(randn(B, H, L, 16))
        return call, (), {}, dict(B=B, H=H, L=L, d=16, D=16)
    if ex == "13":
        cache = module.KVCache(B, H, 17, dk)
        cache.update(randn(B, H, 2, dk), randn(B, H, 2, dk))
        T = 5
        return module.cached_attention, (randn(B, H, T, dk), randn(B, H, T, dk), randn(B, H, T, dk), cache), {}, \
            dict(B=B, H=H, T=T, S=2 + T, d_k=dk, max_len=17)
    if ex == "14":
        return module.flash_attention, (randn(B, H, 40, dk), randn(B, H, 56, dk), randn(B, H, 56, dv)), \
            {"causal": True, "block_size": 16}, dict(B=B, H=H, L=40, S=56, d_k=dk, d_v=dv)
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
    """Probe: runs in the sandbox, on the learner's module; the record and the sizes it used."""
    fn, args, kwargs, known = representative(exercise_id, module)
    return record_shapes(fn, args, kwargs, filename), known


# -- 2. the checker (pure) -----------------------------------------------------------------------
# The contract's names; any other identifier is bound at its first use too.
CONTRACT_SYMBOLS = ("B", "H", "H_q", "H_kv", "L", "S", "T", "D", "d_model", "d_head", "head_dim", "d_k", "d_v",
                    "d", "d_in", "d_out", "n_rep", "max_len", "Bq", "Bk", "n")
ALIASES = {"d_model": "D", "head_dim": "d_head", "num_heads": "H"}
_DIM = r"(?:\.\.\.|…|[A-Za-z_]\w*|\d+)(?:\s*(?:\*|//|·|×)\s*(?:[A-Za-z_]\w*|\d+))*"
_LIST = re.compile(rf"^\s*({_DIM})(\s*,\s*{_DIM})*\s*,?\s*$")


def parse_shape(comment):
    """The dimensions a comment states, as a list of strings, or None if it is not a shape."""
    text = comment.lstrip("#").strip()
    for arrow in ("->", "→"):                   # "(L, d) @ (d, S) -> (L, S)": the result is the claim
        if arrow in text:
            text = text.rsplit(arrow, 1)[1].strip()
    if text.startswith("("):
        depth, end = 0, None
        for i, c in enumerate(text):
            depth += (c == "(") - (c == ")")
            if depth == 0:
                end = i
                break
        if end is None:
            return None
        inner = text[1:end].strip()
        if not inner:
            return []                                   # () : a scalar tensor
        if not _LIST.match(inner):
            return None
        dims = [d.strip() for d in inner.split(",") if d.strip()]
        if len(dims) == 1 and not inner.rstrip().endswith(",") and not _looks_like_dim(dims[0]):
            return None                                 # "(optional)" is prose, "(L,)" or "(S)" a shape
        return [_norm(d) for d in dims]
    text = text.rstrip(".;:")
    if "," in text and _LIST.match(text):
        dims = [d.strip() for d in text.split(",") if d.strip()]
        if len(dims) >= 2:
            return [_norm(d) for d in dims]
    return None


def _norm(dim):
    return "..." if dim in ("...", "…") else re.sub(r"\s+", "", dim).replace("·", "*").replace("×", "*")


def _looks_like_dim(dim):
    return dim in ("...", "…") or dim.isdigit() or dim in CONTRACT_SYMBOLS or dim in ALIASES or \
        bool(re.search(r"\*|//|·|×", dim))


def _statements(source):
    """{line: first line of the simple statement covering it}, and the assignment statements."""
    import ast
    tree = ast.parse(source)
    cover, assigns = {}, set()
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
        elif isinstance(node, (ast.For, ast.With, ast.AsyncFor, ast.AsyncWith)):
            cover.setdefault(node.lineno, node.lineno)   # `for i in ...:  # comment` is its header line
    return cover, assigns


def shape_comments(source):
    """{statement line: (comment line, comment text, dims)} for every shape comment in the source."""
    cover, _ = _statements(source)
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
        found.setdefault(stmt, (t.start[0], t.string.lstrip("#").strip(), dims))
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


def _evaluate(dim, binding):
    """A product such as H*d_head, or None if a symbol in it is unbound."""
    parts = re.split(r"(\*|//)", dim)
    value = None
    op = "*"
    for p in parts:
        if p in ("*", "//"):
            op = p
            continue
        if p.isdigit():
            v = int(p)
        else:
            v = binding.get(ALIASES.get(p, p))
            if v is None:
                return None
        value = v if value is None else (value * v if op == "*" else (value // v if v else None))
        if value is None:
            return None
    return value


def _alignments(dims, shape):
    """Every way to pair the comment's dims with the shape's sizes, each `...` taking 0 or more."""
    if not dims:
        if not shape:
            yield []
        return
    if dims[0] == "...":
        for take in range(len(shape) + 1):
            for rest in _alignments(dims[1:], shape[take:]):
                yield rest
        return
    if shape:
        for rest in _alignments(dims[1:], shape[1:]):
            yield [(dims[0], shape[0])] + rest


def _bind(pairs, binding):
    """(ok, new bindings) for (dim, size) pairs, binding unbound symbols tentatively."""
    new = {}
    products = []
    for dim, size in pairs:
        if dim.isdigit():
            if int(dim) != size:
                return False, {}
        elif re.search(r"\*|//", dim):
            products.append((dim, size))
        else:
            name = ALIASES.get(dim, dim)
            bound = binding.get(name, new.get(name))
            if bound is None:
                new[name] = size
            elif bound != size:
                return False, {}
    for dim, size in products:
        value = _evaluate(dim, {**binding, **new})
        if value is None or value != size:
            return False, {}
    return True, new


def _match(dims, shape, binding):
    """(ok, new bindings, why) for dims against one shape."""
    shape = list(shape)
    fixed = [d for d in dims if d != "..."]
    if "..." not in dims and len(dims) != len(shape):
        return False, {}, f"has {len(shape)} dimensions, the comment {len(dims)}"
    if len(fixed) > len(shape):
        return False, {}, f"has {len(shape)} dimensions, fewer than the comment's {len(fixed)}"
    for pairs in _alignments(dims, shape):
        ok, new = _bind(pairs, binding)
        if ok:
            return True, new, None
    plain = {ALIASES.get(d, d) for d in fixed if not re.search(r"\*|//", d) and not d.isdigit()}
    for d in fixed:
        if re.search(r"\*|//", d):
            for p in re.split(r"\*|//", d):
                if not p.isdigit() and ALIASES.get(p, p) not in binding and ALIASES.get(p, p) not in plain:
                    return False, {}, f"{d} uses a symbol not bound yet"
    return False, {}, None


def _render(dims):
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 and dims[0] != "..." else "") + ")"


def _name_shape(shape, dims, binding):
    """The tensor's real shape in symbols where a bound symbol has that size (the comment's first)."""
    by_value = {}
    for d in dims:
        name = ALIASES.get(d, d)
        if not d.isdigit() and d != "..." and name in binding:
            by_value.setdefault(binding[name], d)
    for name, value in binding.items():
        by_value.setdefault(value, name)
    return "(" + ", ".join(by_value.get(s, str(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def check_narration(source, record, known=None, first_line=1, last_line=None):
    """Compares the shape comments of `source` with a record from record_shapes.

    `known`: the sizes of the call's inputs under the contract's names (see known_sizes); the
    representative call gives every one a distinct size, so a swapped pair cannot pass. Lines
    outside [first_line, last_line] are ignored (to check one function of a file).
    Returns a dict: tensor_lines, annotated, right, wrong (list of {line, says, actual, why}),
    not_tensor (annotated lines that ran but assigned no tensor), not_run, bindings, and `line`,
    the report's narration line."""
    cover, assigns = _statements(source)
    comments = shape_comments(source)
    last_line = last_line or 10 ** 9

    def inside(line):
        return first_line <= line <= last_line

    assigned, returned, order = {}, {}, []
    for raw in record.get("order", []):
        stmt = cover.get(int(raw), int(raw))
        if stmt not in order and inside(stmt):
            order.append(stmt)
    for raw, items in record.get("lines", {}).items():
        stmt = cover.get(int(raw), int(raw))
        if inside(stmt):
            assigned.setdefault(stmt, []).extend(tuple(s) for _, s in items)
    for raw, shape in record.get("returns", {}).items():
        stmt = cover.get(int(raw), int(raw))
        if inside(stmt):
            returned.setdefault(stmt, tuple(shape))
    executed = {cover.get(int(x), int(x)) for x in record.get("executed", [])}

    # A tensor line: an assignment that stored a tensor (a return counts once annotated).
    tensor_lines = sorted(line for line in assigned if line in assigns or line in comments)
    binding = {ALIASES.get(k, k): int(v) for k, v in (known or {}).items()}
    origin = {name: "from the inputs" for name in binding}
    annotated, right, wrong, not_tensor, not_run = 0, 0, [], [], []
    checked = [line for line in order if line in comments] + \
        sorted(line for line in comments if line not in order and inside(line))
    for line in checked:
        comment_line, text, dims = comments[line]
        shapes = assigned.get(line) or ([returned[line]] if line in returned else [])
        if not shapes:
            (not_tensor if line in executed else not_run).append(comment_line)
            continue
        if line in assigned or line in returned:
            annotated += 1
        if line in returned and line not in tensor_lines:
            tensor_lines.append(line)
        verdicts = [_match(dims, s, binding) for s in shapes]
        ok = next((v for v in verdicts if v[0]), None)
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
        wrong.append({"line": comment_line, "says": _render(dims), "actual": _name_shape(actual, dims, binding),
                      "sizes": list(actual), "why": why})
    result = {"tensor_lines": len(tensor_lines), "annotated": annotated, "right": right, "wrong": wrong,
              "not_tensor": sorted(not_tensor), "not_run": sorted(not_run), "bindings": binding}
    result["line"] = narration_line(result)
    return result


def narration_line(result, most=3):
    """narration: 9 of 11 tensor lines annotated, 8 right; line 14 says (B, H, L, d_head), the tensor
    is (B, L, H, d_head)"""
    text = f"narration: {result['annotated']} of {result['tensor_lines']} tensor lines annotated, {result['right']} right"
    notes = []
    for w in result["wrong"][:most]:
        note = f"line {w['line']} says {w['says']}, the tensor is {w['actual']}"
        if w.get("why"):
            note += f" ({w['why']})"
        notes.append(note)
    if len(result["wrong"]) > most:
        notes.append(f"{len(result['wrong']) - most} more wrong")
    if result["not_tensor"]:
        lines = ", ".join(map(str, result["not_tensor"]))
        notes.append(f"line{'s' * (len(result['not_tensor']) > 1)} {lines}: a shape comment where no tensor is "
                     f"assigned")
    return text + ("; " + "; ".join(notes) if notes else "")


def score(result):
    """(coverage, accuracy) in [0, 1]: annotated / tensor lines, right / annotated."""
    coverage = result["annotated"] / result["tensor_lines"] if result["tensor_lines"] else 0.0
    accuracy = result["right"] / result["annotated"] if result["annotated"] else 0.0
    return coverage, accuracy
