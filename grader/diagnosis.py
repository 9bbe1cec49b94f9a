"""What a wrong result looks like, when no catalogued mistake names it: lines a learner can act on.

`close` (grader/checks.py) asks here once it knows the values are wrong: where the error lies
(which batch items, heads or rows), and its shape (a constant factor, zero or uniform rows, the
expected values transposed or reordered, an error growing along the rows, float32 precision in a
float64 result, or, given an `Attending`, attention over the wrong keys: attention_errors.py).
Every function here is a diagnosis: it never raises into the check it explains.
"""
import torch

from . import attention_errors


def _attended_shape(attending, a, atol, rtol, select):
    """The computed attention shape (attention_errors.Shape) that the learner's output `a` equals, or None."""
    def matches(result, rows):
        w = torch.as_tensor(result, dtype=torch.float64)
        if w.shape != a.shape:
            return False
        same = ((a - w).abs() <= atol + rtol * w.abs()) | (a == w) | ~select | ~rows
        return bool(same.all())
    try:
        return attention_errors.find(attending, matches)
    except Exception:       # a diagnosis must never break the check it explains
        return None


def error_shape(a, e, bad, select, dtype, call=None, attention=False):
    """What the error looks like, when no catalogued mistake matches: lines a learner can act on.

    attention: the result is attention (rows are queries), where an error confined to later rows comes from
        the keys they see, not from precision lost along the position: that note is then left out."""
    try:
        return _error_shape(a, e, bad, select, dtype, attention)
    except Exception:       # a diagnosis must never break the check it explains
        return []


def _error_shape(a, e, bad, select, dtype, attention=False):
    notes = []
    ok = select & torch.isfinite(a) & torch.isfinite(e)
    if not ok.any():
        return notes
    # the same values, transposed or reordered
    if a.dim() >= 2 and a.shape[-1] == a.shape[-2] and a.shape[-1] > 1 and _same(a, e.transpose(-1, -2), dtype):
        return ["Shape of the error: your result is the expected one transposed (its last two axes swapped)."]
    for axis in range(a.dim()):
        order = _permutation(a, e, axis, dtype)
        if order is not None:
            shown = ", ".join(map(str, order[:8])) + (", ..." if len(order) > 8 else "")
            return [f"Shape of the error: your result holds the expected values with axis {axis} reordered "
                    f"(your index i holds expected index [{shown}][i]): check a reshape, transpose or index order."]
    # a constant factor, overall or per row
    nz = ok & (e.abs() > 1e-6 * max(float(e[ok].abs().max()), 1e-30))
    if nz.sum() >= 2:
        r = a[nz] / e[nz]
        # (a factor of 0 is no scale: the zero rows below say what it is)
        if float((r - r.mean()).abs().max()) <= 1e-3 * abs(float(r.mean())) and abs(float(r.mean()) - 1) > 1e-3 \
                and abs(float(r.mean())) > 1e-6:
            return [f"Shape of the error: your result is {float(r.mean()):.6g} times the expected one "
                    "everywhere: a constant factor, so check the scale and any division (by a count, by sqrt(d_k))."]
    if a.dim() >= 1 and a.shape[-1] > 1:
        rows_bad = bad.any(-1)
        zero = (a == 0).all(-1) & ~(e == 0).all(-1) & rows_bad
        if zero.any():
            notes.append(f"{int(zero.sum())} of your rows (along the last axis) are entirely zero where the "
                         "expected ones are not.")
        uniform = (a - a[..., :1]).abs().amax(-1) <= 1e-6 * (1 + a.abs().amax(-1))
        uniform &= ~((e - e[..., :1]).abs().amax(-1) <= 1e-6 * (1 + e.abs().amax(-1))) & rows_bad & ~zero
        if uniform.any():
            notes.append(f"{int(uniform.sum())} of your rows are uniform (every entry equal) where the expected "
                         "ones are not: all scores equal, e.g. a scale of 0 that also cancels the mask, or every "
                         "key blocked.")
    if not notes and not attention and a.dim() >= 2 and a.shape[-2] >= 4:
        err = torch.where(ok, (a - e).abs(), 0.0).movedim(-2, 0).reshape(a.shape[-2], -1).amax(1)
        third = max(a.shape[-2] // 3, 1)
        head, tail = float(err[:third].mean()), float(err[-third:].mean())
        if tail > 8 * head and tail > 0:
            notes.append("the error grows along the rows (from about %.2g to %.2g): precision lost in a quantity "
                         "that grows with the position or size, e.g. positions times frequencies in half "
                         "precision." % (head, tail))
    return ["Shape of the error: " + n for n in notes]


# The key `close` gives a float64 result that is right only to float32's precision: like a catalogued
# mistake's, it travels in tests[].mistake and names a `## when:` hint (attention_errors.FIXES lists it).
FLOAT32_PATH = "computed_in_float32"


def float32_path(a, e, select, dtype):
    """The largest relative error of a float64 result whose finite values are right only to float32's
    precision (part of it was computed in float32), or None: the signature of that dtype path, checked
    before any mistake is named, since a float32 path also turns finfo(float64).min into -inf (NaN rows)
    that a catalogued mistake would explain with another cause."""
    try:
        if dtype != torch.float64:
            return None
        ok = select & torch.isfinite(a) & torch.isfinite(e)
        if int(ok.sum()) < 2:
            return None
        diff, ref = (a - e)[ok], e.abs()[ok]
        # relative to the entry, or to the result's size where the entry is near 0 (a cancelled sum)
        rel = diff / (ref + 1e-3 * float(ref.max()) + 1e-300)
        worst = float(rel.abs().max())
        if not 1e-9 < worst < 1e-4:
            return None
        # Rounding errs both ways; a small slip of one sign (an eps added to a sum) is no precision.
        off = rel[rel.abs() > 1e-12]
        up = float((off > 0).to(torch.float64).mean()) if off.numel() else 0.5
        return worst if 0.1 <= up <= 0.9 else None
    except Exception:       # a diagnosis must never break the check it explains
        return None


def float32_described(worst, nan=False):
    """The lines `close` adds for a float64 result computed in float32."""
    lines = [f"Shape of the error: your values are right only to float32's precision (largest relative error "
             f"{worst:.1g}, where float64 gives about 1e-15): part of the computation ran in float32 (.float(), "
             "dtype=torch.float32, a float32 tensor mixed in)."]
    if nan:
        lines.append("In float32, torch.finfo(torch.float64).min is -inf: a fully masked row then turns NaN. "
                     "Keep float64 inputs in float64 throughout (cast only half precision up, and back).")
    else:
        lines.append("Keep float64 inputs in float64 throughout (cast only half precision up, and back).")
    return lines


def _same(a, e, dtype):
    from .checks import TOLERANCE      # checks imports this module: the tolerances stay with close()
    rtol, atol = TOLERANCE.get(dtype, (1e-6, 1e-8))
    return bool(((a - e).abs() <= atol + rtol * e.abs()).all())


def _permutation(a, e, axis, dtype):
    """The order along `axis` that turns e into a, if a is e reordered (and not the identity)."""
    n = a.shape[axis]
    if n < 2 or n > 64:
        return None
    A, E = a.movedim(axis, 0).reshape(n, -1), e.movedim(axis, 0).reshape(n, -1)
    order = []
    for i in range(n):
        match = [j for j in range(n) if _same(A[i], E[j], dtype)]
        if not match:
            return None
        order.append(match[0])
    return order if order != list(range(n)) and len(set(order)) == n else None


def _dt(dtype):
    return str(dtype).removeprefix("torch.")


def _nan_hint(dtype, call=None):
    half = (f" In {_dt(dtype)}, anything beyond ±{torch.finfo(dtype).max:.5g} is inf."
            if dtype in (torch.float16, torch.bfloat16) else "")
    wide = ""
    if dtype == torch.float64:
        wide = (" Or a float64 input computed in float32 (.float(), dtype=torch.float32): there "
                "torch.finfo(torch.float64).min is -inf, and a scale above 1 turns float32's min into -inf too: "
                "keep the input's dtype throughout.")
    return ("\n  Usual causes: exp of a large value overflowing (subtract the max first), a row whose "
            "entries are all masked with -inf (fill with torch.finfo(dtype).min instead), or a fill "
            "multiplied afterwards (scale the scores before the fill)." + half + wide)


def _where_wrong(bad, ndim):
    """Says which batch items, heads or rows are wrong when the error is confined to some."""
    names = {0: "batch item", 1: "head" if ndim == 4 else None, ndim - 2: "query row", ndim - 1: "column"}
    notes = []
    for axis in range(ndim):
        size = bad.shape[axis]
        if size < 2:
            continue
        wrong = bad.movedim(axis, 0).reshape(size, -1).any(dim=1)
        if not wrong.all():
            label = names.get(axis) or f"axis {axis}"
            ids = wrong.nonzero().flatten().tolist()
            shown = ", ".join(map(str, ids[:6])) + (", ..." if len(ids) > 6 else "")
            notes.append(f"only {label}s {shown} (of {size}) are wrong")
    return ("Pattern: " + "; ".join(notes[:2]) + ".") if notes else "Pattern: wrong everywhere."
