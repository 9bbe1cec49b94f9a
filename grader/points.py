"""Points on a grid that binary floating point adds exactly.

Every test's weight is a whole number of quarter points and every exercise's weights add up to
exactly POINTS_PER_EXERCISE, so any sum of them, in any order, in Python or in the Classroom
reporter's JavaScript, is exact: no 115.72000000000001, no exercise worth 10.001.
"""
from fractions import Fraction

GRID = 4            # quarter points: k / 4 is exact in binary floating point


def on_grid(weights, total):
    """`weights` (any positive numbers) scaled to add up to `total`, each a multiple of 1/GRID.

    Largest remainders: each weight gets the whole quarters its share holds, and the quarters
    left over go to the largest fractions. Every test keeps at least one quarter.
    """
    units = round(total * GRID)
    if not weights:
        return []
    if units < len(weights):
        raise ValueError(f"{len(weights)} tests cannot each get a quarter of {total:g} points")
    raw = [Fraction(w).limit_denominator(10**6) for w in weights]
    whole = sum(raw)
    shares = [r * units / whole for r in raw] if whole else [Fraction(units, len(raw))] * len(raw)
    parts = [max(1, int(s)) for s in shares]
    order = sorted(range(len(parts)), key=lambda i: (-(shares[i] - int(shares[i])), i))
    i = 0
    while sum(parts) < units:
        parts[order[i % len(parts)]] += 1
        i += 1
    i = 0
    while sum(parts) > units:              # only when the minimum of one quarter pushed it over
        j = order[::-1][i % len(parts)]
        if parts[j] > 1:
            parts[j] -= 1
        i += 1
    return [p / GRID for p in parts]


def exact(x):
    """True if x is on the grid (a float sum of such numbers stays exact)."""
    return float(x * GRID).is_integer()
